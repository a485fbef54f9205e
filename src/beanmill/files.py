"""Durable small files: atomic replace with fsyncs, private permissions, lock files."""

from __future__ import annotations

import contextlib
import fcntl
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


def lock_file(path: Path) -> int | None:
    """Hold an exclusive lock on `path` (created 0600) and write our pid in it: the open file,
    to keep until the lock is let go by closing it, or None if another process holds it.

    flock belongs to the open file, so it goes away with the process however it dies, and a
    second open in the same process conflicts too. The file is never deleted: deleting a lock
    file lets two processes lock two different files under one name."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def lock_holder(path: Path) -> int | None:
    """The pid written in a lock file, if it can be read."""
    with contextlib.suppress(OSError, ValueError):
        return int(path.read_text().strip())
    return None
