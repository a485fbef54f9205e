"""Durable small files: atomic replace with fsyncs, private permissions."""

from __future__ import annotations

import os
from pathlib import Path


def ensure_private_dir(path: Path) -> None:
    """Create a directory the user alone can enter (checkpoints reveal the data)."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)


def atomic_write(path: Path, data: bytes) -> None:
    """Write temp, fsync, rename over, fsync the directory: old or new, never half."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    """Make a rename in `path` durable."""
    dir_fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
