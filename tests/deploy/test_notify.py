"""sd_notify with real processes: READY once connected, WATCHDOG while running, STOPPING
on SIGTERM, then exit 0, read from a real AF_UNIX datagram socket like systemd's."""

from __future__ import annotations

import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from beanmill.notify import Notifier
from beanmill.server import Beanstalkd
from support import Procs, finish, spec_ref


class NotifySocket:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(15)
        self.seen: list[str] = []

    def until(self, message: str) -> list[str]:
        while message not in self.seen:
            self.seen.append(self.sock.recv(4096).decode())
        return self.seen


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[NotifySocket]:
    sock = NotifySocket(tmp_path / "notify.sock")
    try:
        yield sock
    finally:
        sock.sock.close()


@pytest.mark.parametrize("role", ["consumer", "reducer"])
def test_a_role_under_systemd_says_ready_watchdog_stopping_and_exits_0(
    role: str,
    beanstalkd: Beanstalkd,
    procs: Procs,
    tmp_path: Path,
    notify_socket: NotifySocket,
) -> None:
    env = {"NOTIFY_SOCKET": str(notify_socket.path), "WATCHDOG_USEC": "200000"}
    extra = ["--checkpoint", str(tmp_path / "ck.sqlite")] if role == "reducer" else []
    proc = procs.beanmill(
        role, spec_ref("sums:Squares"), "--beanstalkd", beanstalkd.address, *extra, env=env
    )
    notify_socket.until("READY=1")
    seen = notify_socket.until("WATCHDOG=1")
    assert seen.index("READY=1") < seen.index("WATCHDOG=1")
    proc.send_signal(signal.SIGTERM)
    notify_socket.until("STOPPING=1")
    assert finish(proc)[0] == 0


def test_without_notify_socket_every_call_is_a_no_op() -> None:
    notifier = Notifier({})
    notifier.ready()
    notifier.watchdog()
    notifier.stopping()
    assert notifier.address == "" and notifier.watchdog_every is None


def test_a_dead_socket_is_one_warning_not_a_crash(tmp_path: Path) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")})
    notifier.ready()
    notifier.status("still fine")
    assert notifier.warned


def test_watchdog_is_rate_limited_to_half_the_interval(notify_socket: NotifySocket) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": str(notify_socket.path), "WATCHDOG_USEC": "60000000"})
    for _ in range(100):
        notifier.watchdog()
    notifier.status("x")
    assert notify_socket.until("STATUS=x") == ["WATCHDOG=1", "STATUS=x"]


def test_an_abstract_socket_name_is_addressed_with_a_nul_byte() -> None:
    assert Notifier({"NOTIFY_SOCKET": "@systemd/notify"}).address == "\0systemd/notify"
