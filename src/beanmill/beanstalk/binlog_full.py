"""Waiting out a full binlog disk: beanstalkd's OUT_OF_MEMORY and INTERNAL_ERROR replies.

beanstalkd preallocates each binlog file (`-s`, 10 MB by default) and reserves room in it for
every put before it answers; when no new file can be allocated it refuses the put with
OUT_OF_MEMORY and stores nothing, so sending the same command again is safe. Once space is
back (a file freed, or its own old files collected), it goes on by itself. INTERNAL_ERROR
means a write to the binlog failed: the command took effect in memory, and beanstalkd may
have stopped writing its binlog until it is restarted.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Protocol, TypeVar

import greenstalk
import structlog

from beanmill.errors import QueueFull, QueueLost

#: beanstalkd's replies when it cannot write its binlog.
BINLOG_REFUSALS: tuple[type[greenstalk.BeanstalkdError], ...] = (
    greenstalk.OutOfMemoryError,
    greenstalk.InternalError,
)
#: The disk-full line is repeated at most this often while the wait goes on.
NOTICE_EVERY_S = 60.0
WAIT_FIRST_S = 0.1
WAIT_MAX_S = 5.0

log = structlog.get_logger()
T = TypeVar("T")


def reply_name(exc: greenstalk.BeanstalkdError) -> str:
    return "OUT_OF_MEMORY" if isinstance(exc, greenstalk.OutOfMemoryError) else "INTERNAL_ERROR"


def message(exc: greenstalk.BeanstalkdError, verb: str, tube: str | None) -> str:
    """The one line an operator reads: what beanstalkd said, what it means, what to do."""
    where = f"{verb} to {tube}" if tube else verb
    if isinstance(exc, greenstalk.OutOfMemoryError):
        return (
            f"beanstalkd cannot write its binlog: its disk is full (OUT_OF_MEMORY on {where}); "
            "free space there, then it goes on by itself"
        )
    return (
        f"beanstalkd failed to write its binlog (INTERNAL_ERROR on {where}): its disk is full "
        "or failing, and it may have stopped logging jobs; free space, then restart beanstalkd"
    )


class Flag(Protocol):
    """Shows others that this role waits (binlog_flag.WaitFlag): on at the first refusal,
    off once a command goes through."""

    def show(self) -> None: ...

    def clear(self) -> None: ...


class BinlogWaits:
    """How one role waits while beanstalkd cannot write its binlog: stoppable, feeding its
    watchdog (and whatever else `tick` does, such as touching the jobs in hand), and saying
    so in one line at most once a minute, however many connections of the role wait."""

    def __init__(
        self,
        stop: threading.Event | None = None,
        tick: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Without `stop` nobody waits: a refusal raises QueueFull (one line, exit 2)."""
        self.stop, self.tick, self.clock = stop, tick, clock
        self.noticed_at: float | None = None
        self.notice_open = False
        #: Since when the current wait has lasted (None: not waiting), for status and tests.
        self.waiting_since: float | None = None
        #: What `status` and `top` see of the wait; set by the role (binlog_flag.flag_waits).
        self.flag: Flag | None = None

    def retried(self, command: Callable[[], T], verb: str, tube: str | None, address: str) -> T:
        """Run a command; while beanstalkd refuses it for want of binlog space, say so, wait
        with backoff and send it again. Raises QueueLost if told to stop while waiting (roles
        answer that by stopping), or QueueFull where nobody waits."""
        delay = WAIT_FIRST_S
        since: float | None = None
        while True:
            try:
                result = command()
            except BINLOG_REFUSALS as exc:
                line = message(exc, verb, tube)
                if self.stop is None:
                    raise QueueFull(line) from None
                if since is None:
                    since = self.clock()
                    if self.flag is not None:
                        self.flag.show()
                self.waiting_since = since
                self.notice(exc, verb, tube, address, line)
                if not self.wait(delay):
                    self._clear_flag()
                    raise QueueLost(f"stopped while waiting for beanstalkd: {line}") from None
                delay = min(delay * 2, WAIT_MAX_S)
                continue
            if since is not None:
                self.waiting_since = None
                self._clear_flag()
                if self.notice_open:  # once per line shown: a disk at the edge must not flood
                    self.notice_open = False
                    log.info(
                        "beanstalkd_binlog_writable",
                        command=verb,
                        waited_s=round(self.clock() - since, 1),
                    )
            return result

    def _clear_flag(self) -> None:
        if self.flag is not None:
            self.flag.clear()

    def notice(
        self,
        exc: greenstalk.BeanstalkdError,
        verb: str,
        tube: str | None,
        address: str,
        line: str,
    ) -> None:
        now = self.clock()
        if self.noticed_at is not None and now - self.noticed_at < NOTICE_EVERY_S:
            return
        self.noticed_at = now
        self.notice_open = True
        log.error(
            "beanstalkd_disk_full",
            address=address,
            reply=reply_name(exc),
            command=verb,
            tube=tube,
            hint=line,
        )

    def wait(self, seconds: float) -> bool:
        """Sleep, calling `tick` between short steps; False as soon as the role must stop."""
        for _ in sleeps(seconds):
            if self.tick is not None:
                self.tick()
            if self.stopping():
                return False
        return not self.stopping()

    def stopping(self) -> bool:
        return self.stop is not None and self.stop.is_set()


def sleeps(total: float, step: float = 0.05) -> Iterator[None]:
    """Sleep `total` seconds in small steps, yielding between them so callers can stop early."""
    deadline = time.monotonic() + total
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(min(step, left))
        yield
