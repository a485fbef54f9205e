"""systemd's sd_notify protocol: READY, STATUS, WATCHDOG and STOPPING datagrams.

Written here rather than taken from PyPI: the `sdnotify` package has had no release since
2017 and `systemd-python` needs libsystemd headers to build; the protocol itself is one
datagram to the socket named by NOTIFY_SOCKET. Without that variable every call is a no-op.
"""

from __future__ import annotations

import os
import socket
import time

import structlog

log = structlog.get_logger()


class Notifier:
    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        path = env.get("NOTIFY_SOCKET", "")
        # An abstract socket is written with a leading "@" and addressed with a NUL byte.
        self.address = "\0" + path[1:] if path.startswith("@") else path
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        watched = usec.isdigit() and (not pid or pid == str(os.getpid()))
        self.watchdog_every = int(usec) / 1e6 / 2 if watched else None
        self.last_watchdog = 0.0
        self.warned = False

    def _send(self, message: str) -> None:
        if not self.address:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.connect(self.address)
                sock.sendall(message.encode())
        except OSError as exc:
            if not self.warned:  # systemd is gone or the path is wrong: say so once, go on
                log.warning("sd_notify_failed", error=str(exc))
                self.warned = True

    def ready(self) -> None:
        self._send("READY=1")

    def status(self, text: str) -> None:
        self._send("STATUS=" + text.replace("\n", " ")[:200])

    def watchdog(self) -> None:
        """Cheap to call every loop pass: sends at most every WATCHDOG_USEC / 2."""
        if self.watchdog_every is None:
            return
        now = time.monotonic()
        if now - self.last_watchdog >= self.watchdog_every:
            self._send("WATCHDOG=1")
            self.last_watchdog = now

    def stopping(self) -> None:
        self._send("STOPPING=1")
