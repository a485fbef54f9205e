"""SIGTERM/SIGINT turn into a stop request: finish the job in hand, then exit 0."""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType

import structlog

log = structlog.get_logger()


def install_stop_handlers() -> threading.Event:
    """The first signal asks for a clean stop; a second one exits at once (still safe: the
    queue and the ledger make an abrupt exit look like any other crash)."""
    stop = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            os._exit(128 + signum)
        stop.set()
        log.info("stop_requested", signal=signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stop
