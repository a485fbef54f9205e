"""systemd's sd_notify protocol: READY, STATUS, WATCHDOG and STOPPING datagrams.

Written here rather than taken from PyPI: the `sdnotify` package has had no release since
2017 and `systemd-python` needs libsystemd headers to build; the protocol itself is one
datagram to the socket named by NOTIFY_SOCKET. Without that variable every call is a no-op.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping

import structlog

log = structlog.get_logger()

#: A send never blocks a role for longer than this (systemd reads its socket at once; a
#: full queue means it is stuck, and a missed datagram is better than a stalled loop).
SEND_TIMEOUT_S = 1.0
#: STATUS= is shown on one line by `systemctl status`: keep it short.
STATUS_MAX_CHARS = 200


class Notifier:
    """Tells the service manager how this process is doing; every method is safe to call
    anywhere: without NOTIFY_SOCKET it does nothing, and a failed send is one warning.

    `environ` defaults to `os.environ` (tests pass their own mapping).
    """

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        path = env.get("NOTIFY_SOCKET", "")
        # An abstract socket is written with a leading "@" and addressed with a NUL byte.
        self.address = "\0" + path[1:] if path.startswith("@") else path
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        # WATCHDOG_PID names the process the watchdog is for: not us if we were forked.
        watched = usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid()))
        #: Seconds between two WATCHDOG=1 (half the interval, as sd_watchdog_enabled advises).
        self.watchdog_every = int(usec) / 1e6 / 2 if watched else None
        self.last_watchdog: float | None = None
        self.warned = False

    @property
    def enabled(self) -> bool:
        """True when a service manager listens (NOTIFY_SOCKET is set)."""
        return bool(self.address)

    def _send(self, message: str) -> None:
        if not self.address:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.settimeout(SEND_TIMEOUT_S)
                sock.sendto(message.encode(), self.address)
        except OSError as exc:
            if not self.warned:  # systemd is gone or the path is wrong: say so once, go on
                log.warning(
                    "sd_notify_failed",
                    socket=self.address.replace("\0", "@"),
                    message=message,
                    error=str(exc),
                    hint="systemd will not see this process's state; further failures are quiet",
                )
                self.warned = True

    def ready(self) -> None:
        """READY=1: start-up is over (connected to beanstalkd); `Type=notify` waits for it."""
        self._send("READY=1")

    def status(self, text: str) -> None:
        """STATUS=text: one line for `systemctl status` (newlines flattened, cut to 200)."""
        self._send("STATUS=" + " ".join(text.splitlines())[:STATUS_MAX_CHARS])

    def watchdog(self) -> None:
        """WATCHDOG=1 at most every WATCHDOG_USEC / 2: cheap enough for every loop pass."""
        if self.watchdog_every is None:
            return
        now = time.monotonic()
        if self.last_watchdog is None or now - self.last_watchdog >= self.watchdog_every:
            self._send("WATCHDOG=1")
            self.last_watchdog = now

    def stopping(self) -> None:
        """STOPPING=1: a stop was asked for and the work in hand is being finished."""
        self._send("STOPPING=1")
