"""The link to beanstalkd: addresses, connect timeouts, reconnection with backoff, and socket
failures turned into QueueLost (the only place they are)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

import greenstalk
import structlog

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


class Link:
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

    def _use(self, tube: str) -> None:
        if tube != self._using:
            self.client.use(tube)
            self._using = tube

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
