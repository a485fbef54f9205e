"""Connections to beanstalkd: addresses, connect timeouts, reconnection with backoff, and
waits for space when beanstalkd cannot write its binlog."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import greenstalk
import structlog

from beanmill.beanstalk import pipeline
from beanmill.beanstalk.binlog_full import BinlogWaits, sleeps
from beanmill.errors import BeanmillError, QueueLost, QueueUnavailable

DEFAULT_PRIORITY = 2**31
CONNECT_TIMEOUT_S = 5.0
#: A socket read that takes longer than this means the server is gone (reserves wait 1 s).
IO_TIMEOUT_S = 30.0
BACKOFF_FIRST_S = 0.1
BACKOFF_MAX_S = 5.0

#: Everything that means "the connection is unusable; make a new one".
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    greenstalk.UnknownResponseError,
    AssertionError,  # greenstalk asserts on a truncated reply when the server dies mid-answer
)

log = structlog.get_logger()
T = TypeVar("T")


@contextlib.contextmanager
def lost_on_error(address: str) -> Iterator[None]:
    """Turn socket and protocol failures into QueueLost: roles catch that, and only that."""
    try:
        yield
    except CONNECTION_ERRORS as exc:
        raise QueueLost(f"lost beanstalkd at {address} ({type(exc).__name__}: {exc})") from exc


def parse_address(text: str) -> tuple[str, int]:
    """`HOST:PORT` or `[V6]:PORT` to a socket address, with an error that shows the form."""
    host, sep, port = text.strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise QueueUnavailable(
            f"beanstalkd address {text!r} is not HOST:PORT (for example 127.0.0.1:11300)"
        )
    return host, int(port)


def connect(
    address: str, *, use: str | None = None, watch: str | None = None
) -> greenstalk.Client[bytes]:
    """One connection with a connect timeout (greenstalk has none); bodies stay bytes."""
    host, port = parse_address(address)
    try:
        sock = socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S)
    except ConnectionRefusedError:
        raise QueueUnavailable(
            f"nothing listens at {address}: start beanstalkd there "
            f"(beanstalkd -l {host} -p {port} -b DIR) or pass the right --beanstalkd"
        ) from None
    except socket.gaierror as exc:
        raise QueueUnavailable(
            f"cannot resolve beanstalkd host {host!r} ({exc.strerror}): check --beanstalkd"
        ) from None
    except OSError as exc:
        raise QueueUnavailable(
            f"cannot reach beanstalkd at {address} ({exc.strerror or exc}): "
            "check the address, the firewall and that beanstalkd runs"
        ) from None
    sock.settimeout(IO_TIMEOUT_S)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    try:
        client: greenstalk.Client[bytes] = greenstalk.Client(sock, encoding=None)
        if use is not None:
            client.use(use)
        if watch is not None:
            client.watch(watch)
            if watch != "default":
                client.ignore("default")
    except CONNECTION_ERRORS as exc:
        sock.close()
        raise QueueUnavailable(
            f"{address} did not answer like beanstalkd ({exc!r}): check --beanstalkd"
        ) from None
    return client


class Queue:
    """A connection that remembers its address and tubes, so a role can reconnect after loss.

    The current `use` tube is tracked so a put only costs an extra round trip when the tube
    changes.
    """

    def __init__(
        self,
        address: str,
        *,
        use: str,
        watch: str | None = None,
        retry_s: float = 0.0,
        stop: threading.Event | None = None,
        tick: Callable[[], None] | None = None,
    ) -> None:
        """`retry_s`: keep trying for that long at start (a supervisor may start us while
        beanstalkd restarts); past it, or with 0, an unreachable server is an error.

        `stop`, `tick`: a role's stop event and what to call while it waits (feed the
        watchdog, touch the jobs in hand). With them, a command that beanstalkd refuses for
        want of binlog space waits and is sent again; without them, it raises QueueFull."""
        self.address = address
        self._default_use = use
        self._watch = watch
        self._using = use
        #: Shared with the role's other connections (its lease), so the line is per role.
        self.binlog_waits = BinlogWaits(stop, tick)
        deadline = time.monotonic() + retry_s
        delay = BACKOFF_FIRST_S
        while True:
            try:
                self.client = connect(address, use=use, watch=watch)
                return
            except QueueUnavailable:
                if time.monotonic() + delay > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX_S)

    def put(
        self,
        tube: str,
        body: bytes,
        *,
        delay: int = 0,
        ttr: int = 60,
        priority: int = DEFAULT_PRIORITY,
    ) -> int:
        """Put one job; while beanstalkd's binlog disk is full, wait and put it again."""

        def put() -> int:
            with lost_on_error(self.address):
                self._use(tube)
                job_id: int = self.client.put(body, priority=priority, delay=delay, ttr=ttr)
            return job_id

        return self._binlog_retried(put, "put", tube)

    def _use(self, tube: str) -> None:
        if tube != self._using:
            self.client.use(tube)
            self._using = tube

    def reserve(self, timeout: int) -> greenstalk.Job[bytes] | None:
        """A job, or None when none came within `timeout` seconds."""
        try:
            with lost_on_error(self.address):
                job: greenstalk.Job[bytes] = self.client.reserve(timeout=timeout)
        except (greenstalk.TimedOutError, greenstalk.DeadlineSoonError):
            return None
        return job

    def delete(self, job_id: int) -> bool:
        """False when the job is gone already (TTR expired and it was handed out again)."""

        def delete() -> bool:
            try:
                with lost_on_error(self.address):
                    self.client.delete(job_id)
            except greenstalk.NotFoundError:
                return False
            return True

        return self._binlog_retried(delete, "delete", None)

    def reserve_many(self, timeout: int, most: int) -> list[greenstalk.Job[bytes]]:
        """Wait up to `timeout` s for one job, then take up to `most - 1` more that are ready
        now, in one more round trip."""
        first = self.reserve(timeout)
        if first is None:
            return []
        return [first, *self.reserve_many_ready(most - 1)]

    def reserve_many_ready(self, most: int) -> list[greenstalk.Job[bytes]]:
        with lost_on_error(self.address):
            return pipeline.reserve_ready(self.client, most)

    def delete_many(self, job_ids: list[int]) -> int:
        """How many were there to delete (after a refused delete, a retry counts low)."""

        def delete_many() -> int:
            with lost_on_error(self.address):
                return pipeline.delete_many(self.client, job_ids)

        return self._binlog_retried(delete_many, "delete", None)

    def touch_many(self, job_ids: list[int]) -> int:
        with lost_on_error(self.address):
            return pipeline.touch_many(self.client, job_ids)

    def put_many(
        self, tube: str, bodies: list[bytes], *, ttr: int, priority: int = DEFAULT_PRIORITY
    ) -> list[int]:
        """Put many jobs in few round trips. A retry after a refusal puts them all again:
        those stored the first time become duplicates, which the reducer's ledger absorbs."""

        def put_many() -> list[int]:
            with lost_on_error(self.address):
                self._use(tube)
                return pipeline.put_many(self.client, bodies, priority=priority, ttr=ttr)

        return self._binlog_retried(put_many, "put", tube)

    def bury(self, job: greenstalk.Job[bytes]) -> bool:
        """False when the job is no longer ours (TTR expired, or a refused bury took it)."""

        def bury() -> bool:
            try:
                with lost_on_error(self.address):
                    self.client.bury(job, priority=DEFAULT_PRIORITY)
            except greenstalk.NotFoundError:
                return False
            return True

        return self._binlog_retried(bury, "bury", None)

    def release(self, job: greenstalk.Job[bytes], delay: int) -> None:
        """Back to ready after `delay` s, no attempt counted (the job was not at fault)."""

        def release() -> None:
            with lost_on_error(self.address):
                self.client.release(job, priority=DEFAULT_PRIORITY, delay=delay)

        self._binlog_retried(release, "release", None)

    def touch(self, job: greenstalk.Job[bytes]) -> None:
        with lost_on_error(self.address):
            self.client.touch(job)

    def ttr(self, job: greenstalk.Job[bytes]) -> int:
        with lost_on_error(self.address):
            return int(self.client.stats_job(job)["ttr"])

    def drain(self, tube: str) -> int:
        """Delete every ready, delayed and buried job of a tube (reserved ones stay)."""
        with lost_on_error(self.address):
            self.client.use(tube)
            self._using = tube
            deleted = 0
            for peek in (self.client.peek_ready, self.client.peek_delayed, self.client.peek_buried):
                while True:
                    try:
                        job = peek()
                    except greenstalk.NotFoundError:
                        break
                    deleted += self.delete(job.id)
        return deleted

    def peek_ready(self, tube: str) -> greenstalk.Job[bytes] | None:
        """The next ready job of `tube`, left where it is; None when there is none."""
        try:
            with lost_on_error(self.address):
                self.client.use(tube)
                self._using = tube
                job: greenstalk.Job[bytes] = self.client.peek_ready()
        except greenstalk.NotFoundError:
            return None
        return job

    def reserve_job(self, job_id: int) -> greenstalk.Job[bytes] | None:
        """Reserve this job by ID (to bury it); None if another client took it first."""
        try:
            with lost_on_error(self.address):
                job: greenstalk.Job[bytes] = self.client.reserve_job(job_id)
        except greenstalk.NotFoundError:
            return None
        return job

    def has_ready(self, tube: str) -> bool:
        return int(self.stats_tube(tube).get("current-jobs-ready", 0)) > 0

    def stats_tube(self, tube: str) -> dict[str, Any]:
        try:
            with lost_on_error(self.address):
                stats: dict[str, Any] = dict(self.client.stats_tube(tube))
        except greenstalk.NotFoundError:
            return {}
        return stats

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.client.close()

    def _binlog_retried(self, command: Callable[[], T], verb: str, tube: str | None) -> T:
        return self.binlog_waits.retried(command, verb, tube, self.address)

    def reconnect(
        self, stop: threading.Event | None = None, tick: Callable[[], None] | None = None
    ) -> bool:
        """Reconnect with exponential backoff until it works or `stop` is set."""
        self.close()
        if stop is not None and stop.is_set():
            return False  # stopping: nothing was lost that a reconnect would save
        delay = BACKOFF_FIRST_S
        log.warning(
            "beanstalkd_lost",
            address=self.address,
            hint="reconnecting with backoff; work in hand will be handed out again",
        )
        while stop is None or not stop.is_set():
            try:
                self.client = connect(self.address, use=self._default_use, watch=self._watch)
            except BeanmillError:
                for _ in sleeps(delay):
                    if tick is not None:
                        tick()  # an outage is not a hang: keep systemd's watchdog fed
                    if stop is not None and stop.is_set():
                        return False
                delay = min(delay * 2, BACKOFF_MAX_S)
                continue
            self._using = self._default_use
            log.info("beanstalkd_reconnected", address=self.address)
            return True
        return False
