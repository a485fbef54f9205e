"""The compose deployment end to end: it needs a Docker engine, and says so when there is none."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

COMPOSE = Path(__file__).parents[2] / "deploy" / "docker-compose.yml"


def docker_engine() -> str | None:
    """Why there is no usable engine, or None when there is one."""
    if shutil.which("docker") is None:
        return "no docker client installed"
    try:
        info = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return "no Docker engine reachable (docker info timed out)"
    if info.returncode != 0:
        return "no Docker engine reachable (docker info failed)"
    return None


pytestmark = [
    pytest.mark.docker,
    pytest.mark.skipif(docker_engine() is not None, reason=str(docker_engine())),
]


@pytest.fixture(scope="module")
def docker_compose_file() -> str:
    return str(COMPOSE)


def test_the_compose_stack_runs_the_example_job_to_the_exact_result(
    docker_services: object, docker_compose_file: str
) -> None:
    base = ["docker", "compose", "-f", docker_compose_file]
    subprocess.run([*base, "wait", "reducer"], check=True, timeout=600)
    out = subprocess.run(
        [
            *base,
            "run",
            "--rm",
            "reducer",
            "beanmill",
            "status",
            "--checkpoint",
            "/var/lib/beanmill/checksum.sqlite",
            "--json",
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    ).stdout
    snap = json.loads(out.strip().splitlines()[-1])
    expected = (
        subprocess.run(
            [
                *base,
                "run",
                "--rm",
                "-e",
                "CHECKSUM_ITEMS=20000",
                "reducer",
                "python",
                "/src/examples/checksum.py",
            ],
            check=True,
            capture_output=True,
            text=True,
            timeout=300,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    assert snap["complete"] and snap["items"] == 20000
    assert snap["total"] == int(expected)
