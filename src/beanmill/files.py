"""Durable small files: atomic replace with fsyncs, private permissions, lock files."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import tempfile
from pathlib import Path
from typing import TextIO

#: Files beanmill writes reveal the data (totals, errors, progress): the user's alone.
PRIVATE = 0o600


def ensure_private_dir(path: Path) -> None:
    """Create a directory the user alone can enter (checkpoints reveal the data)."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)


def atomic_write(path: Path, data: bytes) -> None:
    """Write temp, fsync, rename over, fsync the directory: old or new, never half.

    The temp file has a name of its own (two writers never share one) and is removed if the
    write fails, so a full disk leaves nothing behind."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        try:
            os.fchmod(fd, PRIVATE)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def open_private_append(path: Path) -> TextIO:
    """Open a text file for appending lines (a progress file), created 0600 whatever the
    umask, never through a symlink; an existing file is made 0600 too."""
    return os.fdopen(_open_private(path, os.O_WRONLY | os.O_APPEND), "a", encoding="utf-8")


def _open_private(path: Path, flags: int) -> int:
    """os.open with O_CREAT, O_NOFOLLOW and mode 0600 regardless of the umask."""
    fd = os.open(path, flags | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, PRIVATE)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(f"{path} is not a regular file")
        if stat.S_IMODE(info.st_mode) != PRIVATE:
            os.fchmod(fd, PRIVATE)
    except BaseException:
        os.close(fd)
        raise
    return fd


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
    fd = _open_private(path, os.O_RDWR)
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


def file_problem(exc: OSError) -> str:
    """One line for a path of ours that cannot be made or written: the user's to fix."""
    why = exc.strerror or type(exc).__name__
    hint = {
        errno.ENOSPC: "free space on its disk",
        errno.EROFS: "the disk is read-only: pass a path on a writable one",
        errno.EACCES: "pass a path this user may write, or fix its permissions",
        errno.ENOENT: "check the path (its parent directory must exist or be creatable)",
    }.get(exc.errno or 0, "check the path, its permissions and its disk")
    return f"cannot use {exc.filename} ({why}): {hint}; nothing already done was lost"
