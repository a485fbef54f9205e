"""The `--http` server: /metrics, /api/status and the dashboard page, read-only, on the
standard library's ThreadingHTTPServer in a daemon thread of the role's process."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from beanmill.errors import BeanmillError
from beanmill.jsontypes import JSON
from beanmill.web.address import HttpAddress

log = structlog.get_logger()

#: After a job finishes the server answers up to this much longer, so an open page shows the
#: end; only while a page polls (a scrape of /metrics or nobody watching ends it at once).
LINGER_S = 2.5
#: serve_forever's poll: shutdown() waits for it, and every role's exit with it.
POLL_S = 0.05
STATIC_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}
PAGES = {"/": "index.html", "/index.html": "index.html"}

StatusFn = Callable[[], dict[str, JSON]]


def static_file(name: str) -> bytes:
    return resources.files("beanmill.web").joinpath("static", name).read_bytes()


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        try:
            if path == "/metrics":
                self._send(
                    HTTPStatus.OK, CONTENT_TYPE_LATEST, generate_latest(self.server.registry)
                )
            elif path == "/api/status" and self.server.status is not None:
                doc = self.server.status()
                body = json.dumps(doc, allow_nan=False).encode()
                self.server.polled_at = time.monotonic()
                self._send(HTTPStatus.OK, "application/json", body)
                if doc.get("complete") is True:
                    self.server.end_shown.set()  # sent: the page has the end
            elif (name := _static_name(path)) is not None and self.server.status is not None:
                suffix = name[name.rfind(".") :]
                self._send(HTTPStatus.OK, STATIC_TYPES[suffix], static_file(name))
            else:
                self._send(HTTPStatus.NOT_FOUND, "text/plain", b"not found\n")
        except BeanmillError as exc:  # no checkpoint yet, a damaged one: say so, go on serving
            body = json.dumps({"error": str(exc)}).encode()
            self._send(HTTPStatus.SERVICE_UNAVAILABLE, "application/json", body)

    def _send(self, status: HTTPStatus, kind: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http_request", line=format % args)


def _static_name(path: str) -> str | None:
    if path in PAGES:
        return PAGES[path]
    name = path.removeprefix("/static/")
    if name != path and "/" not in name and name[name.rfind(".") :] in STATIC_TYPES:
        return name
    return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self, address: HttpAddress, registry: CollectorRegistry, status: StatusFn | None
    ) -> None:
        if ":" in address.host:
            self.address_family = socket.AF_INET6
        super().__init__((address.host, address.port), _Handler)
        self.registry, self.status = registry, status
        self.polled_at: float | None = None
        self.end_shown = threading.Event()

    def watched(self) -> bool:
        """A page polled /api/status lately (it polls every second or two)."""
        return self.polled_at is not None and time.monotonic() - self.polled_at < LINGER_S


class HttpServer:
    """A running server; `close()` stops it (after LINGER_S when asked to linger)."""

    def __init__(
        self, address: HttpAddress, registry: CollectorRegistry, status: StatusFn | None = None
    ) -> None:
        try:
            self.server = _Server(address, registry, status)
        except OSError as exc:
            raise BeanmillError(
                f"cannot serve --http {address} ({exc.strerror or exc}): pick another port"
            ) from None
        host, port = self.server.server_address[:2]
        self.address = HttpAddress(str(host), int(port))
        self.thread = threading.Thread(
            target=self.server.serve_forever, args=(POLL_S,), name="beanmill-http", daemon=True
        )
        self.thread.start()
        log.info("http_serving", url=f"http://{self.address}/")

    def close(self, linger: bool = False) -> None:
        """With `linger`, an open page gets to fetch the finished job first (up to LINGER_S);
        with no page open the role exits at once: watching must not slow the run."""
        if linger and self.server.watched():
            self.server.end_shown.wait(LINGER_S)
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@contextmanager
def serving(
    address: HttpAddress | None, registry: CollectorRegistry, status: StatusFn | None = None
) -> Iterator[HttpServer | None]:
    server = HttpServer(address, registry, status) if address is not None else None
    try:
        yield server
    finally:
        if server is not None:
            server.close()
