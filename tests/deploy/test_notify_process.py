"""sd_notify from real role processes, read from a real AF_UNIX datagram socket as systemd
binds it: READY=1 once connected, WATCHDOG=1 while running (also during a long batch),
STOPPING=1 on SIGTERM, then exit 0."""

from __future__ import annotations

import itertools
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from beanmill.beanstalk.server import Beanstalkd
from support import Procs, beanstalkd_counts, finish, spec_ref, start_roles, wait_for

WATCHDOG_USEC = 1_000_000  # pings due every 0.5 s: a role gets several in a short test
SPEC = spec_ref("sums:Squares")


class NotifySocket:
    """Every datagram a role sends, with the time it arrived, read at once by a thread (like
    systemd, which never lets its queue fill)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.1)
        self.seen: list[tuple[float, str]] = []
        self.closed = threading.Event()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        while not self.closed.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            self.seen.append((time.monotonic(), data.decode()))

    def stop_reading(self) -> None:
        """Once the role has exited: take what is still queued, so `seen` is complete."""
        self.closed.set()
        self.reader.join()
        self.sock.setblocking(False)
        while True:
            try:
                self.seen.append((time.monotonic(), self.sock.recv(4096).decode()))
            except BlockingIOError:
                return

    def close(self) -> None:
        self.stop_reading()
        self.sock.close()

    @property
    def messages(self) -> list[str]:
        return [message for _, message in list(self.seen)]

    def env(self) -> dict[str, str]:
        return {"NOTIFY_SOCKET": str(self.path), "WATCHDOG_USEC": str(WATCHDOG_USEC)}

    def until(
        self, proc: subprocess.Popen[str], message: str, count: int = 1, timeout: float = 30.0
    ) -> None:
        """Wait until `message` has come `count` times; fail early, with the role's stderr,
        if the role exits first."""
        deadline = time.monotonic() + timeout
        while self.messages.count(message) < count:
            if proc.poll() is not None:
                self.stop_reading()
                if self.messages.count(message) >= count:
                    return
                rc, _, err = finish(proc)
                raise AssertionError(f"role exited {rc} before {message}: {self.messages}\n{err}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {message} after {timeout}s: {self.messages}")
            time.sleep(0.02)


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[NotifySocket]:
    sock = NotifySocket(tmp_path / "notify.sock")
    try:
        yield sock
    finally:
        sock.close()


def role_args(role: str, address: str, tmp_path: Path) -> list[str]:
    extra = ["--checkpoint", str(tmp_path / "ck.sqlite")] if role == "reducer" else []
    return [role, SPEC, "--beanstalkd", address, *extra]


def stop_and_check(proc: subprocess.Popen[str], notify_socket: NotifySocket) -> None:
    """SIGTERM: STOPPING=1 comes, the role exits 0, and it says nothing but STATUS after."""
    proc.send_signal(signal.SIGTERM)
    notify_socket.until(proc, "STOPPING=1")
    rc, _, err = finish(proc, timeout=30)
    assert rc == 0, err
    notify_socket.stop_reading()
    messages = notify_socket.messages
    after = messages[messages.index("STOPPING=1") + 1 :]
    assert all(m.startswith("STATUS=") for m in after), messages


@pytest.mark.parametrize("role", ["consumer", "reducer"])
def test_a_role_under_systemd_says_ready_then_watchdog_then_stopping_and_exits_0(
    role: str,
    beanstalkd: Beanstalkd,
    procs: Procs,
    tmp_path: Path,
    notify_socket: NotifySocket,
) -> None:
    proc = procs.beanmill(*role_args(role, beanstalkd.address, tmp_path), env=notify_socket.env())
    notify_socket.until(proc, "READY=1")
    notify_socket.until(proc, "WATCHDOG=1", count=2)  # it repeats while the role waits for work
    stop_and_check(proc, notify_socket)
    states = [m for m in notify_socket.messages if not m.startswith("STATUS=")]
    assert states[0] == "READY=1", states
    assert states[-1] == "STOPPING=1", states
    assert set(states[1:-1]) == {"WATCHDOG=1"}, states


def test_the_watchdog_keeps_coming_while_a_consumer_maps_a_long_batch(
    beanstalkd: Beanstalkd,
    procs: Procs,
    tmp_path: Path,
    notify_socket: NotifySocket,
) -> None:
    """One batch of 10 items at 0.4 s each: 4 s inside map(), longer than the watchdog."""
    sums = {"SUMS_ITEMS": "10", "SUMS_MAP_DELAY": "0.4"}
    producer = procs.beanmill(
        "producer", SPEC, "--beanstalkd", beanstalkd.address, "--state", "cursor.json", env=sums
    )
    rc, _, err = finish(producer)
    assert rc == 0, err
    consumer = procs.beanmill(
        *role_args("consumer", beanstalkd.address, tmp_path), env={**sums, **notify_socket.env()}
    )
    notify_socket.until(consumer, "READY=1")
    started = time.monotonic()

    def batch_done() -> bool:  # the producer's end record and the consumer's partial
        ready = beanstalkd_counts(beanstalkd, "squares.results").get("current-jobs-ready", 0)
        return int(ready) == 2

    wait_for(batch_done, timeout=60, what="the partial of the one batch")
    assert time.monotonic() - started >= 3.5, "the batch was not mapped while we listened"
    stop_and_check(consumer, notify_socket)
    pings = [at for at, m in notify_socket.seen if m == "WATCHDOG=1"]
    gaps = [b - a for a, b in itertools.pairwise(pings)]
    assert len(pings) >= 5, notify_socket.messages
    # Half the interval is 0.5 s; a loop pass (reserve waits 1 s) or a map tick adds to it.
    assert max(gaps) < 2.0, gaps


def test_a_reducer_started_on_a_complete_checkpoint_says_ready_before_it_exits_0(
    beanstalkd: Beanstalkd,
    procs: Procs,
    tmp_path: Path,
    notify_socket: NotifySocket,
) -> None:
    """Under Type=notify, a main process that exits 0 without READY=1 fails its unit (result
    'protocol') and Restart=on-failure starts it again and again: a finished reducer must
    say READY=1 too."""
    sums = {"SUMS_ITEMS": "100"}
    ckpt = tmp_path / "ck.sqlite"
    start_roles(procs, beanstalkd.address, ckpt, SPEC, consumers=1, env=sums)
    rc, _, err = finish(procs.started[0])  # the first reducer, to the end of the job
    assert rc == 0, err
    again = procs.beanmill(
        *role_args("reducer", beanstalkd.address, tmp_path), env={**sums, **notify_socket.env()}
    )
    rc, _, err = finish(again)
    assert rc == 0, err
    notify_socket.stop_reading()
    assert "READY=1" in notify_socket.messages, (notify_socket.messages, err)
