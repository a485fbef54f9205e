"""A role's start-up imports only what a role uses: counted modules, never wall time."""

from __future__ import annotations

import subprocess
import sys

# What only operator commands need; a role that imports one pays for it at every start.
OPERATOR_ONLY = (
    "beanmill.admin",
    "beanmill.check",
    "beanmill.check_cli",
    "beanmill.status_cli",
    "beanmill.dashboard_cli",
    "beanmill.plot",
    "beanmill.progress",
    "matplotlib",
    "prometheus_client",
    "http.server",
)

# `consumer --help` imported 274 modules against 25 for `python -c pass` (11x) before the
# operator commands loaded lazily; 246 (9.8x) after; 208 (8.0x) without asyncio.
MAX_RATIO = 8.5


def imported(*args: str) -> list[str]:
    """Every module a fresh interpreter imports for `args`, from `-X importtime`."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return [
        line.rsplit("|", 1)[1].strip()
        for line in proc.stderr.splitlines()
        if line.startswith("import time:") and "|" in line and "self [us]" not in line
    ]


def test_consumer_help_imports_no_operator_command() -> None:
    names = imported("-m", "beanmill", "consumer", "--help")
    assert "beanmill.cli" in names
    loaded = [n for n in names if n.startswith(OPERATOR_ONLY)]
    assert loaded == []


def test_no_role_imports_asyncio_through_structlog() -> None:
    names = imported("-m", "beanmill", "consumer", "--help")
    assert "structlog" in names
    assert [n for n in names if n == "ssl" or n.startswith("asyncio")] == []


def test_consumer_help_imports_a_bounded_multiple_of_a_bare_start() -> None:
    bare = imported("-c", "pass")
    role = imported("-m", "beanmill", "consumer", "--help")
    assert len(bare) > 0
    assert len(role) / len(bare) < MAX_RATIO, (len(role), len(bare))


def test_an_operator_command_still_loads_when_named() -> None:
    # importlib.import_module's own module is not logged by -X importtime; what it imports is
    names = imported("-m", "beanmill", "status", "--help")
    assert "beanmill.progress" in names
