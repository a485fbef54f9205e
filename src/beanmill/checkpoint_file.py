"""The checkpoint's file: created whole, flocked for one writer, opened with its pragmas and
checked (integrity, job, digest, rollback) before any write."""

from __future__ import annotations

import json
import os
import sqlite3
import time
import uuid
from pathlib import Path

from beanmill.checkpoint_store import SCHEMA, SCHEMA_VERSION, connect_db, corrupt, read_meta
from beanmill.errors import CheckpointError
from beanmill.files import ensure_private_dir, fsync_dir, lock_file, lock_holder
from beanmill.integrity import check_digest, check_not_rolled_back, digest, read_seq


class CheckpointFile:
    """The writer's open file: exclusive, opened once at start.

    `<checkpoint>.lock` is flocked for the handle's life: a second writer is refused at
    once, while readers (status, buried, plot) go on reading."""

    def __init__(self, path: Path, job: str) -> None:
        self.path = path
        ensure_private_dir(path.parent)
        self._lock = _lock(path)
        try:
            self.db = self._open(job)
        except BaseException:
            os.close(self._lock)
            raise

    def _open(self, job: str) -> sqlite3.Connection:
        path = self.path
        if not path.exists():
            _create(path, job)
        try:
            self.db = connect_db(path, read_only=False)
        except sqlite3.DatabaseError as exc:
            raise corrupt(path, exc) from None
        try:
            self._verify(job)  # before any write: a foreign file is refused untouched
            self.db.executescript(SCHEMA)  # tables added since 0.1, on an older checkpoint
            self.db.execute("PRAGMA journal_mode = WAL")
            self.db.execute("PRAGMA synchronous = FULL")
        except (sqlite3.DatabaseError, CheckpointError) as exc:
            self.db.close()
            if isinstance(exc, CheckpointError):
                raise
            raise corrupt(path, exc) from None
        return self.db

    def _verify(self, job: str) -> None:
        sidecar = read_seq(self.path)  # first: it may only be behind what the file holds
        check = self.db.execute("PRAGMA quick_check").fetchone()
        if check is None or check[0] != "ok":
            raise corrupt(self.path, sqlite3.DatabaseError(str(check)))
        meta = read_meta(self.db, self.path)
        if meta.get("schema") != SCHEMA_VERSION:
            raise corrupt(self.path, sqlite3.DatabaseError("not a beanmill checkpoint"))
        if meta.get("job") != job:
            raise CheckpointError(
                f"checkpoint {self.path} belongs to job {meta.get('job')!r}, not {job!r}: "
                "pass the checkpoint of this job, or another path to start one"
            )
        (self._ledger,) = self.db.execute("SELECT count(*) FROM ledger").fetchone()
        check_digest(self.path, meta, self._ledger)
        check_not_rolled_back(self.path, sidecar, meta)
        self._seq: int = meta.get("seq", 0)
        #: Written by 0.1 without an id (nor digest): both come with the next commit.
        self._new_id = "id" not in meta
        self._id: str = meta.get("id") or uuid.uuid4().hex

    def close(self) -> None:
        """Close the database, then let go of the lock; closing twice is harmless."""
        if self._lock < 0:
            return
        self.db.close()
        os.close(self._lock)
        self._lock = -1


def lock_path(path: Path) -> Path:
    return path.with_name(path.name + ".lock")


def _lock(path: Path) -> int:
    fd = lock_file(lock_path(path))
    if fd is None:
        pid = lock_holder(lock_path(path))
        raise CheckpointError(
            f"checkpoint {path} is in use by another reducer "
            f"({f'pid {pid}' if pid else 'pid unknown'}): stop it first, or pass another "
            "--checkpoint (status, buried and plot can read it meanwhile)"
        )
    return fd


def _create(path: Path, job: str) -> None:
    """Build a complete empty checkpoint aside and rename it in: killed halfway, nothing is
    left at `path` that a restart would have to refuse."""
    tmp = path.with_name(path.name + ".new")
    tmp.unlink(missing_ok=True)
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    db = sqlite3.connect(tmp, isolation_level=None)
    try:
        # One transaction and no syncs of its own: the file is synced whole before it is
        # renamed in, so a crash leaves only a `.new` that the next start replaces.
        db.execute("PRAGMA journal_mode = OFF")
        db.execute("PRAGMA synchronous = OFF")
        db.executescript(f"BEGIN; {SCHEMA}")
        now = time.time()
        meta = {
            "schema": SCHEMA_VERSION,
            "job": job,
            "id": uuid.uuid4().hex,
            "seq": 0,
            "items": 0,
            "created_at": now,
            "updated_at": now,
        }
        db.executemany(
            "INSERT INTO meta(key, value) VALUES (?, ?)",
            [(k, json.dumps(v)) for k, v in meta.items()],
        )
        seal(db, path, ledger=0)
        db.execute("COMMIT")
    finally:
        db.close()
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def seal(db: sqlite3.Connection, path: Path, ledger: int) -> None:
    """Store the digest of the meta values just written, inside their transaction."""
    db.execute(
        "INSERT INTO meta(key, value) VALUES ('digest', ?) "
        "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (json.dumps(digest(read_meta(db, path), ledger)),),
    )
