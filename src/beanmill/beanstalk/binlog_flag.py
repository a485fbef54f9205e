"""Who waits on beanstalkd's full binlog disk, visible to `status` and `top` from anywhere.

While a role waits, one connection of its own watches the tube
`<job>.binlog-full.<role>.<host>.<pid>.<since>`. beanstalkd lists every watched tube in
`list-tubes` and writes nothing to its binlog for a watch, so this works while nothing else
can be written; the tube goes away by itself when the wait ends or the process dies.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import time
from dataclasses import dataclass

import greenstalk
import structlog

from beanmill.beanstalk.binlog_full import BinlogWaits
from beanmill.beanstalk.connection import CONNECTION_ERRORS, connect
from beanmill.errors import QueueUnavailable

MARK = ".binlog-full."
#: beanstalkd's limit on a tube name.
MAX_TUBE_CHARS = 200

log = structlog.get_logger()


@dataclass(frozen=True)
class BinlogFull:
    """One role waiting for binlog space, since `since` (Unix seconds)."""

    role: str
    host: str
    pid: int
    since: int

    def describe(self, now: float) -> str:
        return (
            f"{self.role} pid {self.pid} on {self.host}, waiting {max(0, int(now - self.since))} s "
            "for space on beanstalkd's binlog disk"
        )

    def as_json(self) -> dict[str, str | int]:
        return {"role": self.role, "host": self.host, "pid": self.pid, "since": self.since}


def flag_tube(job: str, waiting: BinlogFull) -> str:
    """The tube's name; a host name is cut to fit, and characters a tube cannot hold become _."""
    head = f"{job}{MARK}{waiting.role}."
    tail = f".{waiting.pid}.{waiting.since}"
    host = re.sub(r"[^A-Za-z0-9+/;$_()-]", "_", waiting.host)  # no dots: they separate
    return head + host[: max(1, MAX_TUBE_CHARS - len(head) - len(tail))] + tail


def parse_flag(job: str, tube: str) -> BinlogFull | None:
    """The waiting role a tube names, or None for any other tube."""
    if not tube.startswith(job + MARK):
        return None
    role, _, rest = tube[len(job) + len(MARK) :].partition(".")
    host, _, numbers = rest.partition(".")
    pid, _, since = numbers.partition(".")
    if not (role and host and pid.isdigit() and since.isdigit()):
        return None
    return BinlogFull(role, host, int(pid), int(since))


def waiting_on_binlog(client: greenstalk.Client[bytes], job: str) -> list[BinlogFull]:
    """Every role of `job` waiting now, oldest first (one `list-tubes`)."""
    found = (parse_flag(job, str(tube)) for tube in client.tubes())
    return sorted((w for w in found if w is not None), key=lambda w: (w.since, w.role, w.pid))


def waiting_at(address: str, job: str) -> list[BinlogFull] | None:
    """`waiting_on_binlog` through a short connection; None when beanstalkd cannot be asked."""
    try:
        client = connect(address)
    except QueueUnavailable:
        return None
    try:
        return waiting_on_binlog(client, job)
    except CONNECTION_ERRORS:
        return None
    finally:
        with contextlib.suppress(*CONNECTION_ERRORS):
            client.close()


class WaitFlag:
    """Shows one role's wait: a connection watching its flag tube, opened once per wait."""

    def __init__(self, address: str, job: str, role: str) -> None:
        self.address, self.job, self.role = address, job, role
        self._client: greenstalk.Client[bytes] | None = None

    def show(self) -> None:
        if self._client is not None:
            return
        waiting = BinlogFull(self.role, socket.gethostname(), os.getpid(), int(time.time()))
        try:
            self._client = connect(self.address, watch=flag_tube(self.job, waiting))
        except QueueUnavailable as exc:  # status shows less; the wait itself goes on
            log.debug("binlog_flag_not_shown", reason=str(exc))

    def clear(self) -> None:
        if self._client is not None:
            with contextlib.suppress(*CONNECTION_ERRORS):
                self._client.close()
            self._client = None


def flag_waits(waits: BinlogWaits, address: str, job: str, role: str) -> None:
    """Make a role's waits on a full binlog disk visible to `status` and `top`."""
    waits.flag = WaitFlag(address, job, role)
