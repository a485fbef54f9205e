"""One holder per role and job, from any host: a lease that is one job reserved on beanstalkd.

The lock tube holds one job. Whoever has it reserved holds the lease; beanstalkd hands it back
the moment the holder's connection closes (exit, crash, SIGKILL, lost host), so a successor
can take over at once, and a holder that stops renewing loses it after the TTR.

Acquiring: reserve the ready job, or, when the tube is empty, put one and reserve it. Two
acquirers racing on an empty tube can each hold one, so a holder counts as the winner only if,
once it holds its job, the tube's ready + reserved jobs are exactly 1: of any two winners the
later one would have counted the earlier one's job. A loser deletes what it holds and what it
put, so no stray job is left, and tries again after a short random pause.

Reserved jobs cannot be read by others, so the holder also keeps one record of itself (host,
pid, since when, a token) as a delayed job in the tube `<lock tube>.holder`. That record names
the holder in LeaseHeld, and it tells a holder that reconnects (its connection broke, or
beanstalkd restarted and gave the job back as ready) whether anyone else held the lease in
between: every winner rewrites the record before it returns from `acquire`.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

import greenstalk
import structlog

from beanmill.beanstalk.binlog_full import BINLOG_REFUSALS, BinlogWaits
from beanmill.beanstalk.connection import CONNECTION_ERRORS, connect
from beanmill.errors import BeanmillError, QueueLost, QueueUnavailable

#: Long, because only renew() keeps the lease, and a role may be busy for a while between calls.
LEASE_TTR_S = 3600
#: How often a role should call renew() at the least; well inside the TTR.
RENEW_EVERY_S = 60.0
#: The holder record is a delayed job that no reserve can take: ten years.
RECORD_DELAY_S = 10 * 365 * 24 * 3600
#: Rounds of the race on an empty tube before an acquirer gives up.
ACQUIRE_ATTEMPTS = 50
ACQUIRE_PAUSE_S = 0.02

log = structlog.get_logger()


class LeaseHeld(BeanmillError):
    """Another process holds the lease: stop it first, or wait for it to exit."""


class LeaseLost(BeanmillError):
    """The lease was lost (TTR passed, or someone else held it while we were disconnected)."""


def lease_tube(job: str, role: str) -> str:
    """The lock tube of one role of one job, e.g. `squares.lease.reducer`."""
    return f"{job}.lease.{role}"


def hold(address: str, job: str, role: str, waits: BinlogWaits) -> Lease:
    """The lease of `role` for `job`, acquired: one holder per job from any host, or
    LeaseHeld naming the holder."""
    lease = Lease(address, lease_tube(job, role), role=role, waits=waits)
    lease.acquire()
    return lease


@dataclass(frozen=True)
class Holder:
    """Who holds a lease: written as JSON in the holder record."""

    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)
    started_at: float = field(default_factory=time.time)
    token: str = field(default_factory=lambda: uuid.uuid4().hex)

    def describe(self) -> str:
        since = datetime.fromtimestamp(self.started_at, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        return f"pid {self.pid} on {self.host}, since {since}"

    def encode(self, lock_job: int) -> bytes:
        return json.dumps({**asdict(self), "lock_job": lock_job}).encode()

    @staticmethod
    def decode(body: bytes) -> tuple[Holder, int] | None:
        """The holder and its lock job ID, or None for a body that is not a holder record."""
        try:
            data = json.loads(body)
            lock_job = int(data.pop("lock_job"))
            return Holder(**data), lock_job
        except (ValueError, TypeError, KeyError, AttributeError):
            return None


class Lease:
    """A lease held through this object's own connection, used from one thread only."""

    def __init__(
        self,
        address: str,
        tube: str,
        *,
        role: str = "reducer",
        holder: Holder | None = None,
        ttr: int = LEASE_TTR_S,
        waits: BinlogWaits | None = None,
    ) -> None:
        """`waits`: the role's way to wait while beanstalkd's binlog disk is full (the lease
        puts a job); without it, a full disk raises QueueFull."""
        self.address = address
        self.waits = waits or BinlogWaits()
        self.tube = tube
        self.record_tube = f"{tube}.holder"
        self.role = role
        self.holder = holder or Holder()
        self.ttr = ttr
        self._client: greenstalk.Client[bytes] | None = None
        #: The lock job, reserved on this connection; None while in doubt (disconnected).
        self._job: int | None = None
        self._record_job: int | None = None
        #: Granted and neither released nor lost: renew() mends a broken connection.
        self._granted = False

    @property
    def held(self) -> bool:
        """Held right now through a live connection."""
        return self._job is not None

    # -- the public steps ------------------------------------------------------------------

    def acquire(self) -> None:
        """Take the lease, or raise LeaseHeld naming the holder; QueueUnavailable if
        beanstalkd cannot be reached."""
        if self._granted:
            return
        with self._connection_errors():
            self._binlog_retried(lambda: self._take(lost=False))
            self._binlog_retried(self._write_record)
        self._granted = True
        log.info("lease_acquired", tube=self.tube, lock_job=self._job)

    def keep(self) -> None:
        """renew() for a role's loop: beanstalkd out of reach is the loop's QueueLost, which
        reconnects (and renews again); a lease taken by another still raises LeaseLost."""
        try:
            self.renew()
        except QueueUnavailable as exc:
            raise QueueLost(str(exc)) from None

    def renew(self) -> None:
        """Touch the lease (one round trip); call it at least every RENEW_EVERY_S, and before
        every step that must not happen without the lease (a checkpoint commit).

        A broken connection is mended by reacquire(). Raises LeaseLost if the lease is gone,
        QueueUnavailable if beanstalkd cannot be reached (the lease is then in doubt: do not
        go on, and call renew() again later)."""
        if not self._granted:
            raise LeaseLost(self._lost_message("it was released, or never acquired"))
        if self._job is None:
            self.reacquire()
            return
        try:
            self._conn().touch(greenstalk.Job(self._job, b""))
        except greenstalk.NotFoundError:
            self._drop()
            raise LeaseLost(self._lost_message("its TTR passed without a renew")) from None
        except CONNECTION_ERRORS:
            self.reacquire()

    def reacquire(self) -> None:
        """Reconnect and take the lease again after a broken connection or a beanstalkd
        restart; LeaseLost if another process held it in between, QueueUnavailable if
        beanstalkd cannot be reached yet (call again later)."""
        self._close()
        with self._connection_errors():
            self._binlog_retried(lambda: self._take(lost=True))
            record = self._read_record()
            if record is None or record[0].token != self.holder.token:
                self._drop()
                raise LeaseLost(self._lost_message("another process held it in the meantime"))
            self._binlog_retried(self._write_record)
        log.info("lease_reacquired", tube=self.tube, lock_job=self._job)

    def release(self) -> None:
        """Give the lease up: the next acquirer gets it at once. Never raises: if beanstalkd
        is gone, so is the lease."""
        if self._client is not None and self._job is not None:
            with contextlib.suppress(
                greenstalk.NotFoundError, *BINLOG_REFUSALS, *CONNECTION_ERRORS
            ):
                record = self._read_record()
                if record is not None and record[0].token == self.holder.token:
                    assert self._record_job is not None
                    self._client.delete(self._record_job)
                self._client.delete(self._job)
            log.info("lease_released", tube=self.tube)
        self._drop()  # closing the connection frees the lock job in any case

    def holder_now(self) -> Holder | None:
        """The current holder, if its record is current (for messages and status)."""
        with self._connection_errors():
            record = self._read_record()
            if record is None:
                return None
            holder, lock_job = record
            try:
                stats = self._conn().stats_job(lock_job)
            except greenstalk.NotFoundError:
                return None
            if stats["state"] != "reserved" or stats["tube"] != self.tube:
                return None
            return holder

    def __enter__(self) -> Lease:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    # -- the protocol ------------------------------------------------------------------------

    def _binlog_retried(self, step: Callable[[], None]) -> None:
        """A step that puts, sent again while beanstalkd's binlog disk is full: a refused put
        stored nothing, and each step starts from what the tube holds."""
        self.waits.retried(step, "put", self.tube, self.address)

    def _take(self, *, lost: bool) -> None:
        """Hold the lock job as the only ready-or-reserved job of the tube, or raise."""
        client = self._conn()
        for _ in range(ACQUIRE_ATTEMPTS):
            put: int | None = None
            held = self._reserve_now(client)
            if held is None:
                ready, reserved = self._counts(client)
                if reserved > 0 and ready == 0:
                    raise self._held_error(lost=lost)
                if ready == 0:
                    put = client.put(self.holder.encode(0), delay=0, ttr=self.ttr)
                    held = self._reserve_now(client)
            if held is not None and self._counts(client) == (0, 1):
                self._job = held
                return
            self._back_off(client, held, put)
        raise self._held_error(lost=lost, busy=True)

    @staticmethod
    def _back_off(client: greenstalk.Client[bytes], held: int | None, put: int | None) -> None:
        """Lost a round: delete what we hold and what we put (unless another holds it)."""
        for job in {held, put} - {None}:
            assert job is not None
            with contextlib.suppress(greenstalk.NotFoundError):
                client.delete(job)  # not found: reserved by another, who wins or deletes it
        time.sleep(random.uniform(0, ACQUIRE_PAUSE_S))

    @staticmethod
    def _reserve_now(client: greenstalk.Client[bytes]) -> int | None:
        try:
            job: int = client.reserve(timeout=0).id
        except (greenstalk.TimedOutError, greenstalk.DeadlineSoonError):
            return None
        return job

    def _counts(self, client: greenstalk.Client[bytes]) -> tuple[int, int]:
        """(ready, reserved) jobs of the lock tube."""
        try:
            stats = client.stats_tube(self.tube)
        except greenstalk.NotFoundError:
            return 0, 0  # a tube with no jobs and no clients does not exist
        return int(stats["current-jobs-ready"]), int(stats["current-jobs-reserved"])

    def _write_record(self) -> None:
        """Replace whatever holder record there is by ours (only a holder writes it)."""
        assert self._job is not None
        client = self._conn()
        client.use(self.record_tube)
        try:
            for peek in (client.peek_delayed, client.peek_ready, client.peek_buried):
                while True:
                    try:
                        client.delete(peek().id)
                    except greenstalk.NotFoundError:
                        break
            self._record_job = client.put(
                self.holder.encode(self._job), delay=RECORD_DELAY_S, ttr=self.ttr
            )
        finally:
            client.use(self.tube)

    def _read_record(self) -> tuple[Holder, int] | None:
        client = self._conn()
        client.use(self.record_tube)
        try:
            job = client.peek_delayed()
        except greenstalk.NotFoundError:
            return None
        finally:
            client.use(self.tube)
        self._record_job = job.id
        return Holder.decode(job.body)

    # -- messages and the connection -------------------------------------------------------

    def _held_error(self, *, lost: bool, busy: bool = False) -> BeanmillError:
        holder = self.holder_now()
        who = f"another {self.role} ({holder.describe()})" if holder else f"another {self.role}"
        if lost:
            self._drop()
            return LeaseLost(self._lost_message(f"{who} holds it now"))
        if busy:
            return LeaseHeld(
                f"could not take the lease {self.tube} at {self.address}: other {self.role}s "
                "kept starting at the same moment; start one at a time"
            )
        return LeaseHeld(
            f"{who} holds the lease {self.tube} at {self.address}: stop it first, or wait "
            "for it to exit (one per job, on any host)"
        )

    def _lost_message(self, why: str) -> str:
        return (
            f"this {self.role} lost the lease {self.tube} at {self.address} ({why}): it stops "
            f"so that two {self.role}s never work on one job; start it again once the other "
            "has exited"
        )

    def _conn(self) -> greenstalk.Client[bytes]:
        if self._client is None:
            self._client = connect(self.address, use=self.tube, watch=self.tube)
        return self._client

    def _drop(self) -> None:
        """No longer granted: close the connection, which frees anything it held."""
        self._close()
        self._granted = False

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
