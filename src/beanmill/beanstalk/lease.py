"""One holder per role and job, from any host: a lease that is one job reserved on beanstalkd.

The lock tube holds one job. Whoever has it reserved holds the lease; beanstalkd hands it back
the moment the holder's connection closes (exit, crash, SIGKILL), so a successor can take over
at once, and a holder that stops renewing loses it after the TTR. A host that vanishes closes
nothing: its lease waits for the TTR, and beanstalkd 1.12 may keep it reserved past that
(docs/operations.md, "a worker gone for good": `ss -K dst HOST` frees it).

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

The lock connection and the race are in lease_lock.py, the record in lease_record.py; this
module holds the steps (acquire, renew/keep, reacquire, release).
"""

from __future__ import annotations

import contextlib

import greenstalk
import structlog

from beanmill.beanstalk.binlog_flag import flag_waits
from beanmill.beanstalk.binlog_full import BINLOG_REFUSALS, BinlogWaits
from beanmill.beanstalk.lease_lock import LockConnection, take
from beanmill.beanstalk.lease_record import Holder, HolderRecord
from beanmill.beanstalk.link import CONNECTION_ERRORS
from beanmill.errors import BeanmillError, QueueLost, QueueUnavailable

#: Long, because only renew() keeps the lease, and a role may be busy for a while between calls.
LEASE_TTR_S = 3600
#: How often a role should call renew() at the least; well inside the TTR.
RENEW_EVERY_S = 60.0

log = structlog.get_logger()

__all__ = ["RENEW_EVERY_S", "Holder", "Lease", "LeaseHeld", "LeaseLost", "hold", "lease_tube"]


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
    flag_waits(waits, address, job, role)  # its waits on a full binlog disk show in status
    lease = Lease(address, lease_tube(job, role), role=role, waits=waits)
    lease.acquire()
    return lease


class Lease(LockConnection):
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
        super().__init__(address, tube, ttr=ttr, waits=waits)
        self.record = HolderRecord(tube, ttr)
        self.role = role
        self.holder = holder or Holder()
        #: Granted and neither released nor lost: renew() mends a broken connection.
        self._granted = False

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
            raise LeaseLost(_lost_message(self, "it was released, or never acquired"))
        if self._job is None:
            self.reacquire()
            return
        try:
            self._conn().touch(greenstalk.Job(self._job, b""))
        except greenstalk.NotFoundError:
            self._drop()
            raise LeaseLost(_lost_message(self, "its TTR passed without a renew")) from None
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
                raise LeaseLost(_lost_message(self, "another process held it in the meantime"))
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
                    assert self.record.job is not None
                    self._client.delete(self.record.job)
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

    def _take(self, *, lost: bool) -> None:
        """Hold the lock job as the only ready-or-reserved job of the tube, or raise."""
        taken = take(self._conn(), self.tube, self.holder.encode(0), self.ttr)
        if isinstance(taken, str):
            raise self._held_error(lost=lost, busy=taken == "busy")
        self._job = taken

    def _write_record(self) -> None:
        assert self._job is not None
        self.record.write(self._conn(), self.holder, self._job)

    def _read_record(self) -> tuple[Holder, int] | None:
        return self.record.read(self._conn())

    def _held_error(self, *, lost: bool, busy: bool = False) -> BeanmillError:
        holder = self.holder_now()
        who = f"another {self.role} ({holder.describe()})" if holder else f"another {self.role}"
        if lost:
            self._drop()
            return LeaseLost(_lost_message(self, f"{who} holds it now"))
        return LeaseHeld(_held_message(self, who, busy=busy))

    def _drop(self) -> None:
        """No longer granted: close the connection, which frees anything it held."""
        self._close()
        self._granted = False


def _held_message(lease: Lease, who: str, *, busy: bool) -> str:
    if busy:
        return (
            f"could not take the lease {lease.tube} at {lease.address}: other {lease.role}s "
            "kept starting at the same moment; start one at a time"
        )
    return (
        f"{who} holds the lease {lease.tube} at {lease.address}: stop it first, or wait "
        "for it to exit (one per job, on any host)"
    )


def _lost_message(lease: Lease, why: str) -> str:
    return (
        f"this {lease.role} lost the lease {lease.tube} at {lease.address} ({why}): it stops "
        f"so that two {lease.role}s never work on one job; start it again once the other "
        "has exited"
    )
