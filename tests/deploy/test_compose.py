"""The compose deployment end to end: beanstalkd, consumers, reducer and producer run the
example job to its exact total. It needs a Docker engine, and says so when there is none."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
COMPOSE = ROOT / "deploy" / "docker-compose.yml"
CHECKPOINT = "/var/lib/beanmill/checksum.sqlite"
ITEMS = 20000  # CHECKSUM_ITEMS in the compose file


def docker_unavailable() -> str | None:
    """Why the stack cannot run here, or None when it can."""
    if shutil.which("docker") is None:
        return "no Docker engine reachable (no docker command installed)"
    try:
        info = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=15)
    except subprocess.TimeoutExpired:
        return "no Docker engine reachable (`docker info` timed out)"
    if info.returncode != 0:
        why = (info.stderr.strip().splitlines() or ["no message"])[-1]
        return f"no Docker engine reachable (`docker info` failed: {why})"
    compose = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=15)
    if compose.returncode != 0:
        return "the Docker engine runs but the `docker compose` plugin is not installed"
    return None


UNAVAILABLE = docker_unavailable()
pytestmark = [
    pytest.mark.docker,
    pytest.mark.skipif(UNAVAILABLE is not None, reason=UNAVAILABLE or ""),
]


# pytest-docker's fixtures are session-scoped: overrides must be too.
@pytest.fixture(scope="session")
def docker_compose_file() -> str:
    return str(COMPOSE)


@pytest.fixture(scope="session")
def docker_setup() -> list[str]:
    """Not pytest-docker's `up --wait`: the producer and the reducer exit (0) by design."""
    return ["up --build --detach"]


@pytest.fixture(scope="session")
def docker_cleanup() -> list[str]:
    return ["down --volumes --remove-orphans --timeout 30"]


@pytest.fixture
def compose(
    docker_services: object, docker_compose_file: str, docker_compose_project_name: str
) -> Iterator[list[str]]:
    """The `docker compose` command for the stack pytest-docker started; its logs are
    printed when the test fails."""
    command = ["docker", "compose", "-f", docker_compose_file, "-p", docker_compose_project_name]
    yield command
    logs = subprocess.run(
        [*command, "logs", "--no-color", "--tail", "50"],
        text=True,
        capture_output=True,
        timeout=120,
    )
    print(logs.stdout[-20000:])


def exited(compose: list[str], service: str, timeout: float) -> int:
    """Wait for the service's one container to exit; its exit code."""
    deadline = time.monotonic() + timeout
    while True:
        ids = subprocess.run(
            [*compose, "ps", "--all", "--quiet", service],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout.split()
        assert len(ids) == 1, f"{service}: expected one container, found {ids}"
        state = subprocess.run(
            ["docker", "inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", ids[0]],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout.split()
        if state[0] == "exited":
            return int(state[1])
        assert time.monotonic() < deadline, f"{service} still {state[0]} after {timeout}s"
        time.sleep(1)


def expected_total(monkeypatch: pytest.MonkeyPatch) -> int:
    """The answer computed here, without beanmill, as the example's __main__ does."""
    monkeypatch.setenv("CHECKSUM_ITEMS", str(ITEMS))
    spec = importlib.util.spec_from_file_location("checksum_example", ROOT / "examples/checksum.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "checksum_example", module)
    spec.loader.exec_module(module)
    job = module.Checksum()
    total: int = job.reduce([job.map(i) for i in job.items()])
    return total


def test_the_compose_stack_runs_the_example_job_to_the_exact_total(
    compose: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert exited(compose, "producer", timeout=600) == 0
    assert exited(compose, "reducer", timeout=900) == 0
    running = subprocess.run(
        [*compose, "ps", "--quiet", "consumer"], capture_output=True, text=True, timeout=60
    ).stdout.split()
    assert len(running) == 3, "the consumers keep waiting for work"
    out = subprocess.run(
        [
            *compose,
            "run",
            "--rm",
            "--no-deps",
            "reducer",
            "beanmill",
            "status",
            "--checkpoint",
            CHECKPOINT,
            "--json",
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    ).stdout
    snap = json.loads(out.strip().splitlines()[-1])
    assert snap["complete"] is True
    assert snap["items"] == ITEMS
    assert snap["errors"] == 0
    assert snap["total"] == expected_total(monkeypatch)
