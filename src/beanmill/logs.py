"""structlog, configured once at the CLI entry: JSON lines off a terminal, console on one."""

from __future__ import annotations

import logging
import os
import socket
import sys

import structlog


def configure(level: str = "info", fmt: str = "auto", **context: str) -> None:
    """Every event carries role, job, host and pid; progress lines go to stdout, logs to stderr."""
    if fmt == "auto":
        fmt = "console" if sys.stderr.isatty() else "json"
    renderer: structlog.typing.Processor = (
        structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
        if fmt == "console"
        else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        # One write per line: roles of one `beanmill run` share its stderr, and print()'s
        # separate newline let their lines interleave.
        logger_factory=structlog.WriteLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(host=socket.gethostname(), pid=os.getpid(), **context)
