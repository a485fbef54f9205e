"""A `beanmill run` data dir: its checkpoint, cursor, binlog, and the live server's address.

The admin commands reach a run's queue through it: the address a running `run` wrote, or,
once `run` has exited, a private beanstalkd started on the data dir's binlog for the command.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from beanmill.beanstalk.connection import connect
from beanmill.beanstalk.server import start_private
from beanmill.errors import BeanmillError, QueueUnavailable

CHECKPOINT = "checkpoint.sqlite"
CURSOR = "cursor.json"
BINLOG = "binlog"
#: The key `run` signs bodies with, made at its first start (see signing.py).
SECRET = "secret"  # noqa: S105 (a file name, not a password)
#: Written by a running `run`, removed when it ends.
ADDRESS_FILE = "beanstalkd.address"


def write_address(data_dir: Path, address: str) -> None:
    (data_dir / ADDRESS_FILE).write_text(address + "\n")


def forget_address(data_dir: Path) -> None:
    (data_dir / ADDRESS_FILE).unlink(missing_ok=True)


def live_address(data_dir: Path) -> str | None:
    """The address of the beanstalkd a running `run` of this data dir started, if it answers."""
    try:
        address = (data_dir / ADDRESS_FILE).read_text().strip()
    except OSError:
        return None
    try:
        connect(address).close()
    except QueueUnavailable:
        return None  # a run killed before it could remove the file
    return address


@contextlib.contextmanager
def queue_of(data_dir: Path) -> Iterator[str]:
    """The address of the data dir's beanstalkd, starting one on its binlog if none runs."""
    if not (data_dir / CHECKPOINT).is_file() and not (data_dir / BINLOG).is_dir():
        raise BeanmillError(
            f"{data_dir} is not a `beanmill run` data dir (no {CHECKPOINT}, no {BINLOG}/): "
            "check --data-dir"
        )
    address = live_address(data_dir)
    if address is not None:
        yield address
        return
    server = start_private(data_dir / BINLOG)
    try:
        yield server.address
    finally:
        server.stop()
