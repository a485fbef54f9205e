"""The sd_notify client against a real AF_UNIX datagram socket, as systemd binds it."""

from __future__ import annotations

import contextlib
import os
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from structlog.testing import capture_logs

from beanmill import notify
from beanmill.notify import Notifier


class Listener:
    """A bound datagram socket standing in for systemd's notify socket."""

    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.setblocking(False)

    def received(self) -> list[str]:
        """Every datagram queued so far (a unix datagram is queued before sendto returns)."""
        out = []
        while True:
            try:
                out.append(self.sock.recv(4096).decode())
            except BlockingIOError:
                return out


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[Listener]:
    sock = Listener(str(tmp_path / "notify.sock"))
    try:
        yield sock
    finally:
        sock.sock.close()


@pytest.fixture
def env_socket(listener: Listener, monkeypatch: pytest.MonkeyPatch) -> Listener:
    """NOTIFY_SOCKET points at the listener; no watchdog unless a test sets one."""
    monkeypatch.setenv("NOTIFY_SOCKET", listener.sock.getsockname())
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    return listener


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(notify, "time", SimpleNamespace(monotonic=fake))  # only notify's clock
    return fake


def test_each_method_sends_its_datagram_to_notify_socket(env_socket: Listener) -> None:
    notifier = Notifier()
    notifier.ready()
    notifier.status("1,200 jobs done")
    notifier.stopping()
    assert env_socket.received() == ["READY=1", "STATUS=1,200 jobs done", "STOPPING=1"]


def test_an_abstract_socket_named_with_at_is_reached(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"beanmill-test-{uuid.uuid4().hex}"
    listener = Listener("\0" + name)
    try:
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        Notifier().ready()
        assert listener.received() == ["READY=1"]
    finally:
        listener.sock.close()


def test_status_is_one_short_line(env_socket: Listener) -> None:
    Notifier().status("first line\nsecond line " + "x" * 500)
    (message,) = env_socket.received()
    assert message.startswith("STATUS=first line second line x")
    assert "\n" not in message
    assert len(message) == len("STATUS=") + notify.STATUS_MAX_CHARS


def test_watchdog_is_sent_at_most_every_half_watchdog_usec_so_every_pass_may_call_it(
    env_socket: Listener, monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "2000000")  # 2 s: one WATCHDOG=1 per second at most
    notifier = Notifier()
    for _ in range(1000):
        notifier.watchdog()
    assert env_socket.received() == ["WATCHDOG=1"]
    clock.now += 0.99
    notifier.watchdog()
    assert env_socket.received() == []
    clock.now += 0.01
    for _ in range(1000):
        notifier.watchdog()
    assert env_socket.received() == ["WATCHDOG=1"]


def test_watchdog_is_off_without_watchdog_usec(env_socket: Listener) -> None:
    Notifier().watchdog()
    assert env_socket.received() == []


def test_watchdog_for_another_pid_is_not_ours(
    env_socket: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "1000000")
    monkeypatch.setenv("WATCHDOG_PID", "1")  # the parent that systemd started, not us
    Notifier().watchdog()
    assert env_socket.received() == []
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    Notifier().watchdog()
    assert env_socket.received() == ["WATCHDOG=1"]


def test_without_notify_socket_every_method_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.setenv("WATCHDOG_USEC", "1000000")

    def no_socket(*args: object) -> None:
        raise AssertionError("a socket was opened without NOTIFY_SOCKET")

    monkeypatch.setattr(notify, "socket", SimpleNamespace(socket=no_socket))
    notifier = Notifier()
    assert not notifier.enabled
    with capture_logs() as logs:
        notifier.ready()
        notifier.status("anything")
        notifier.watchdog()
        notifier.stopping()
    assert logs == []


@pytest.mark.parametrize("state", ["missing", "closed"])
def test_a_dead_socket_is_one_warning_not_a_crash(
    state: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "gone.sock"
    if state == "closed":  # bound once, its reader gone: the file stays, sends are refused
        Listener(str(path)).sock.close()
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    monkeypatch.setenv("WATCHDOG_USEC", "1000000")
    notifier = Notifier()
    with capture_logs() as logs:
        notifier.ready()
        notifier.watchdog()
        notifier.status("still fine")
        notifier.stopping()
    assert [entry["event"] for entry in logs] == ["sd_notify_failed"]
    assert logs[0]["log_level"] == "warning"
    assert logs[0]["socket"] == str(path)


def test_a_stuck_service_manager_does_not_stall_the_caller(
    listener: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A listener that never reads has a full queue: a send gives up after SEND_TIMEOUT_S."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as filler:
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            while True:
                filler.sendto(b"X=1", listener.sock.getsockname())
    monkeypatch.setattr(notify, "SEND_TIMEOUT_S", 0.05)
    notifier = Notifier({"NOTIFY_SOCKET": listener.sock.getsockname()})
    with capture_logs() as logs:
        for i in range(5):
            started = time.monotonic()
            notifier.status(f"update {i}")
            assert time.monotonic() - started < 1.0
    assert [entry["event"] for entry in logs] == ["sd_notify_failed"]
