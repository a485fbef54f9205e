"""Helpers shared by the tests: real processes, polling with deadlines, known answers."""

from __future__ import annotations

import contextlib
import json
import os
import select
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, cast

import greenstalk

from beanmill.beanstalk.server import Beanstalkd

SPECS = Path(__file__).parent / "specs"


def spec_ref(name: str) -> str:
    """A test job spec by `module:NAME` under tests/specs."""
    module, _, obj = name.partition(":")
    return f"{SPECS / (module + '.py')}:{obj}"


class Procs:
    """Processes started by a test, all killed at teardown whatever happened."""

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        self.started: list[subprocess.Popen[str]] = []

    def beanmill(
        self, *args: str, env: dict[str, str] | None = None, capture: bool = True
    ) -> subprocess.Popen[str]:
        full_env = {**os.environ, "BEANMILL_LOG_FORMAT": "json", **(env or {})}
        proc = subprocess.Popen(
            [sys.executable, "-m", "beanmill", *args],
            cwd=self.cwd,
            env=full_env,
            text=True,
            stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
            stderr=subprocess.PIPE if capture else subprocess.DEVNULL,
        )
        self.started.append(proc)
        return proc

    def reducer(
        self, spec: str, address: str, ckpt: Path, env: dict[str, str] | None = None
    ) -> subprocess.Popen[str]:
        """A reducer that commits every 0.2 s, so a test sees its checkpoint move promptly."""
        return self.beanmill(
            "reducer", spec, "--beanstalkd", address, "--checkpoint", str(ckpt),
            "--commit-interval", "0.2", env=env,
        )  # fmt: skip

    def cleanup(self) -> None:
        for proc in self.started:
            if proc.poll() is None:
                proc.kill()
            proc.wait()


def wait_for(predicate: Callable[[], bool], timeout: float = 30.0, what: str = "") -> None:
    """Poll a condition with a deadline (never sleep as synchronisation)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")


def wait_for_log(proc: subprocess.Popen[str], event: str, timeout: float = 30.0) -> str:
    """Read a running process's stderr until an event shows up; returns what was read."""
    assert proc.stderr is not None
    read: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stderr], [], [], 0.1)
        if ready:
            line = proc.stderr.readline()
            if not line:
                break
            read.append(line)
            if f'"{event}"' in line:
                return "".join(read)
    raise AssertionError(f"no {event!r} event within {timeout}s; read: {''.join(read)[-800:]}")


def finish(proc: subprocess.Popen[str], timeout: float = 60.0) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def status(checkpoint: Path) -> dict[str, Any]:
    """`beanmill status --json`, through the real command line."""
    out = subprocess.run(
        [sys.executable, "-m", "beanmill", "status", "--checkpoint", str(checkpoint), "--json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    result: dict[str, Any] = json.loads(out)
    return result


def start_roles(
    procs: Procs,
    address: str,
    ckpt: Path,
    spec: str,
    *,
    consumers: int = 2,
    env: dict[str, str] | None = None,
    producer_args: tuple[str, ...] = ("--batch-size", "50"),
) -> None:
    """Reducer, producer and consumers as separate processes, as on real hosts."""
    procs.reducer(spec, address, ckpt, env=env)
    procs.beanmill(
        "producer",
        spec,
        "--beanstalkd",
        address,
        "--state",
        str(ckpt.parent / "cursor.json"),
        *producer_args,
        env=env,
    )
    for _ in range(consumers):
        procs.beanmill("consumer", spec, "--beanstalkd", address, env=env)


def tube_client(server: Beanstalkd, tube: str) -> greenstalk.Client[bytes]:
    """A plain greenstalk connection that uses and watches `tube`, bodies as bytes: what
    another consumer, or a test's own hand, sees of the queue."""
    return greenstalk.Client((server.host, server.port), encoding=None, use=tube, watch=tube)


def beanstalkd_counts(server: Beanstalkd, tube: str) -> dict[str, int]:
    client = greenstalk.Client((server.host, server.port), encoding=None)
    try:
        # Every field the tests read is a count; only "name" is not.
        return dict(cast("Mapping[str, int]", client.stats_tube(tube)))
    except greenstalk.NotFoundError:
        return {}
    finally:
        client.close()


@contextlib.contextmanager
def umask(mask: int) -> Iterator[None]:
    """Files created inside get this umask (tests of 0600 whatever the umask)."""
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


class StderrTail:
    """Every line a running process writes to stderr, read by a thread of its own (select on
    the pipe misses lines that Python's buffer already holds), for polling with a deadline."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stderr is not None
        self.lines: list[str] = []
        self._stream = proc.stderr
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        for line in self._stream:
            self.lines.append(line)

    def events(self) -> list[dict[str, Any]]:
        """The JSON log events so far (other lines, such as progress, are skipped)."""
        return [json.loads(x) for x in list(self.lines) if x.startswith("{")]

    def wait_for(self, event: str, timeout: float = 30.0, count: int = 1) -> None:
        wait_for(
            lambda: sum(e["event"] == event for e in self.events()) >= count,
            timeout,
            what=f"{count} {event!r} events; last lines: {''.join(self.lines[-5:])[-800:]}",
        )

    def text(self, timeout: float = 30.0) -> str:
        """All of stderr, once the process has closed it."""
        self._thread.join(timeout)
        return "".join(self.lines)
