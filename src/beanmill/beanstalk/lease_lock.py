"""A lease's lock job: the connection that holds it, and the race to take it (lease.py says
why a holder that counts exactly one ready-or-reserved job in the tube is the only winner)."""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable, Iterator
from typing import Literal

import greenstalk

from beanmill.beanstalk.binlog_full import BinlogWaits
from beanmill.beanstalk.link import CONNECTION_ERRORS, connect
from beanmill.errors import QueueUnavailable

#: Rounds of the race on an empty tube before an acquirer gives up.
ACQUIRE_ATTEMPTS = 50
ACQUIRE_PAUSE_S = 0.02


class LockConnection:
    """The connection to a lock tube, where the lock job is reserved; used from one thread."""

    def __init__(
        self, address: str, tube: str, *, ttr: int, waits: BinlogWaits | None = None
    ) -> None:
        """`waits`: the role's way to wait while beanstalkd's binlog disk is full (the lease
        puts a job); without it, a full disk raises QueueFull."""
        self.address = address
        self.waits = waits or BinlogWaits()
        self.tube = tube
        self.ttr = ttr
        self._client: greenstalk.Client[bytes] | None = None
        #: The lock job, reserved on this connection; None while in doubt (disconnected).
        self._job: int | None = None

    @property
    def held(self) -> bool:
        """Held right now through a live connection."""
        return self._job is not None

    def _binlog_retried(self, step: Callable[[], None]) -> None:
        """A step that puts, sent again while beanstalkd's binlog disk is full: a refused put
        stored nothing, and each step starts from what the tube holds."""
        self.waits.retried(step, "put", self.tube, self.address)

    def _conn(self) -> greenstalk.Client[bytes]:
        if self._client is None:
            self._client = connect(self.address, use=self.tube, watch=self.tube)
        return self._client

    def _close(self) -> None:
        if self._client is not None:
            with contextlib.suppress(OSError):
                self._client.close()
            self._client = None
        self._job = None

    @contextlib.contextmanager
    def _connection_errors(self) -> Iterator[None]:
        """A broken connection becomes QueueUnavailable; the lease is then in doubt."""
        try:
            yield
        except CONNECTION_ERRORS as exc:
            self._close()
            raise QueueUnavailable(
                f"lost beanstalkd at {self.address} while taking the lease {self.tube} "
                f"({exc!r}); try again once it is back"
            ) from None


def take(
    client: greenstalk.Client[bytes], tube: str, body: bytes, ttr: int
) -> int | Literal["held", "busy"]:
    """The lock job, held as the only ready-or-reserved job of the tube; "held" when another
    holds it, "busy" when the race was lost every round."""
    for _ in range(ACQUIRE_ATTEMPTS):
        put: int | None = None
        held = _reserve_now(client)
        if held is None:
            ready, reserved = _counts(client, tube)
            if reserved > 0 and ready == 0:
                return "held"
            if ready == 0:
                put = client.put(body, delay=0, ttr=ttr)
                held = _reserve_now(client)
        if held is not None and _counts(client, tube) == (0, 1):
            return held
        _back_off(client, held, put)
    return "busy"


def _back_off(client: greenstalk.Client[bytes], held: int | None, put: int | None) -> None:
    """Lost a round: delete what we hold and what we put (unless another holds it)."""
    for job in {held, put} - {None}:
        assert job is not None
        with contextlib.suppress(greenstalk.NotFoundError):
            client.delete(job)  # not found: reserved by another, who wins or deletes it
    time.sleep(random.uniform(0, ACQUIRE_PAUSE_S))


def _reserve_now(client: greenstalk.Client[bytes]) -> int | None:
    try:
        job: int = client.reserve(timeout=0).id
    except (greenstalk.TimedOutError, greenstalk.DeadlineSoonError):
        return None
    return job


def _counts(client: greenstalk.Client[bytes], tube: str) -> tuple[int, int]:
    """(ready, reserved) jobs of the lock tube."""
    try:
        stats = client.stats_tube(tube)
    except greenstalk.NotFoundError:
        return 0, 0  # a tube with no jobs and no clients does not exist
    return int(stats["current-jobs-ready"]), int(stats["current-jobs-reserved"])
