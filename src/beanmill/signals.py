"""SIGTERM/SIGINT turn into a stop request: finish the job in hand, then exit 0."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from types import FrameType

import structlog

log = structlog.get_logger()


class StopRequested(Exception):
    """Raised into a wait that holds nothing (see `StopSignals.interruptible`)."""


class StopSignals:
    """The first signal asks for a clean stop; a second one exits at once (still safe: the
    queue and the ledger make an abrupt exit look like any other crash)."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self._interruptible = False

    def handler(self, signum: int, frame: FrameType | None) -> None:
        if self.event.is_set():
            os._exit(128 + signum)
        self.event.set()
        log.info("stop_requested", signal=signal.Signals(signum).name)
        if self._interruptible:
            self._interruptible = False
            raise StopRequested

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
    signal.signal(signal.SIGTERM, _signals.handler)
    signal.signal(signal.SIGINT, _signals.handler)
    return _signals.event


def interruptible() -> contextlib.AbstractContextManager[None]:
    """`StopSignals.interruptible` of the installed handlers; a no-op block without them
    (a role run in-process by a test, stopped through its event)."""
    if _signals is None:
        return contextlib.nullcontext()
    return _signals.interruptible()
