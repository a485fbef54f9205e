"""Where `--http` serves: parsed and checked without importing the server (fast start-up)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from beanmill.errors import BeanmillError


@dataclass(frozen=True)
class HttpAddress:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_http(text: str, public: bool = False) -> HttpAddress:
    """`HOST:PORT` to serve on; anything but loopback needs `public`: nothing here asks who
    is looking, and the page shows the job's results and its failed items."""
    host, sep, port = text.strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise BeanmillError(f"--http {text!r} is not HOST:PORT (for example 127.0.0.1:8000)")
    if not public and not _loopback(host):
        raise BeanmillError(
            f"--http {text} is not a loopback address, and the dashboard and /metrics have no "
            "authentication: pass --http-public to serve them there anyway"
        )
    return HttpAddress(host, int(port))


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: it may resolve anywhere
