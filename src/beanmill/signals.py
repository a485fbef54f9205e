"""SIGTERM/SIGINT turn into a stop request: finish the job in hand, then exit 0."""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from types import FrameType

import structlog

log = structlog.get_logger()

RELAY_EXIT_WAIT_S = 1.0


class StopRequested(Exception):
    """Raised into a wait that holds nothing (see `StopSignals.interruptible`)."""


class _SignalledEvent(threading.Event):
    """A stop event that a signal handler can set without taking a lock.

    A handler runs in the main thread, between two bytecodes of whatever it was doing. If that
    was logging, or `Event.wait` on this very event (which holds the event's lock for a moment),
    taking the same lock in the handler would wait for itself forever. So the handler only
    marks the request, which `is_set` and `wait` see at once, and the relay thread of
    `StopSignals` sets the event for real, which wakes any thread blocked in `wait`."""

    def __init__(self) -> None:
        super().__init__()
        self.requested = False

    def is_set(self) -> bool:
        return self.requested or super().is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self.requested or super().wait(timeout)


class StopSignals:
    """The first signal asks for a clean stop; a second one exits at once (still safe: the
    queue and the ledger make an abrupt exit look like any other crash).

    The handler does nothing that takes a lock: it records the signal, marks the event and
    releases `_wake`, a lock that only the relay thread waits on (releasing never blocks).
    The relay thread (`start_relay`) then sets the event and logs `stop_requested`."""

    def __init__(self) -> None:
        self._event = _SignalledEvent()
        self.event: threading.Event = self._event
        self.signum: int | None = None
        self._interruptible = False
        self._wake = threading.Lock()
        self._wake.acquire()

    def handler(self, signum: int, frame: FrameType | None) -> None:
        if self.event.is_set():
            os._exit(128 + signum)
        self.signum = signum
        self._event.requested = True
        self._wake.release()
        if self._interruptible:
            self._interruptible = False
            raise StopRequested

    def start_relay(self) -> threading.Thread:
        """Start the daemon thread that, once a signal came, sets the event and logs it once.
        A process that stops quickly waits for that line at exit (daemon threads still run
        while atexit handlers do), so `stop_requested` is never lost."""
        thread = threading.Thread(target=self._relay, name="stop-signals", daemon=True)
        thread.start()

        def finish_relay() -> None:
            if self._event.requested:
                thread.join(RELAY_EXIT_WAIT_S)

        atexit.register(finish_relay)
        return thread

    def _relay(self) -> None:
        self._wake.acquire()
        self._event.set()
        name = signal.Signals(self.signum).name if self.signum is not None else None
        log.info("stop_requested", signal=name)

    @contextlib.contextmanager
    def interruptible(self) -> Iterator[None]:
        """A stop request raises StopRequested inside this block instead of waiting for it to
        end: for a blocking reserve that holds no job yet, so a stop takes effect now, not a
        reserve timeout later. A job the server hands over meanwhile goes back to ready when
        the connection closes; the caller must not use the connection again."""
        if self.event.is_set():
            raise StopRequested
        self._interruptible = True
        try:
            yield
        finally:
            self._interruptible = False


_signals: StopSignals | None = None


def install_stop_handlers() -> threading.Event:
    global _signals
    _signals = StopSignals()
    _signals.start_relay()
    signal.signal(signal.SIGTERM, _signals.handler)
    signal.signal(signal.SIGINT, _signals.handler)
    return _signals.event


def interruptible() -> contextlib.AbstractContextManager[None]:
    """`StopSignals.interruptible` of the installed handlers; a no-op block without them
    (a role run in-process by a test, stopped through its event)."""
    if _signals is None:
        return contextlib.nullcontext()
    return _signals.interruptible()
