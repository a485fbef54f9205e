"""The reducer's checkpoint: total, ledger of applied batches and stored errors, in one SQLite file.

Every commit writes the new total and the batch IDs it contains in one transaction, so the
ledger can never disagree with the total: that is what makes duplicates harmless.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

# The operators' side of the checkpoint, importable from here as before.
from beanmill.checkpoint_ops import (
    forget_errors,
    read_errors,
    read_failed,
    read_history,
    requeue_failed,
)
from beanmill.checkpoint_store import (
    SCHEMA,
    SCHEMA_VERSION,
    Snapshot,
    connect_db,
    corrupt,
    read_meta,
    read_snapshot,
    retry_json,
    retry_of,
    snapshot_of,
    write_transaction,
)
from beanmill.errors import CheckpointError
from beanmill.files import ensure_private_dir, fsync_dir, lock_file, lock_holder
from beanmill.ids import RETRY_SUFFIX
from beanmill.integrity import (
    check_digest,
    check_not_rolled_back,
    digest,
    read_seq,
    write_seq,
)
from beanmill.jsontypes import JSON
from beanmill.outcomes import FailedItem, Retry
from beanmill.wire import EndRecord, ErrorRecord

__all__ = [
    "Checkpoint",
    "Snapshot",
    "forget_errors",
    "read_errors",
    "read_failed",
    "read_history",
    "read_snapshot",
    "requeue_failed",
]


class Checkpoint:
    """The reducer's handle: exclusive writer, opened once at start.

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

    def _write_meta(self, values: dict[str, Any]) -> None:
        self.db.executemany(
            "INSERT INTO meta(key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            [(k, json.dumps(v)) for k, v in values.items()],
        )

    def snapshot(self) -> Snapshot:
        return snapshot_of(self.db, self.path)

    def applied(self, batch_ids: Iterable[str]) -> set[str]:
        """Which of these batches the ledger already holds."""
        return self._found("ledger", batch_ids)

    def _found(self, table: str, batch_ids: Iterable[str]) -> set[str]:
        ids = list(batch_ids)
        found: set[str] = set()
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self.db.execute(f"SELECT batch FROM {table} WHERE batch IN ({marks})", chunk)
            found.update(row[0] for row in rows)
        return found

    def pending(self, batch_ids: Iterable[str]) -> set[str]:
        """Which of these retry batches are scheduled and not applied yet."""
        return self._found("pending", batch_ids)

    def unput_retries(self) -> list[Retry]:
        """Retries committed but not yet put on the queue (or put by a reducer that died
        before noting it: a second copy is a duplicate, which the ledger absorbs)."""
        rows = self.db.execute("SELECT batch, record FROM pending WHERE put = 0 ORDER BY batch")
        return [retry_of(b, r) for b, r in rows]

    def mark_put(self, batch_ids: Sequence[str]) -> None:
        with write_transaction(self.db):
            self.db.executemany(
                "UPDATE pending SET put = 1 WHERE batch = ?", [(b,) for b in batch_ids]
            )

    def fail_retries(self, retries: Sequence[Retry], error: str, host: str) -> None:
        """Retries that can never be put: their items fail for good, in one transaction."""
        now = time.time()
        failed = [
            FailedItem(r.batch, item, f"JobTooBigError: {error}", "", r.attempt, host)
            for r in retries
            for item in r.items
        ]
        with write_transaction(self.db):
            self.db.executemany(
                "DELETE FROM pending WHERE batch = ?", [(r.batch,) for r in retries]
            )
            self.db.executemany(
                "INSERT OR REPLACE INTO failed(batch, item, record, failed_at) VALUES (?, ?, ?, ?)",
                [(f.batch, json.dumps(f.item), json.dumps(asdict(f)), now) for f in failed],
            )

    def commit(
        self,
        *,
        total: JSON,
        items: int,
        applied: Sequence[tuple[str, int]],
        errors: Sequence[ErrorRecord] = (),
        end: EndRecord | None = None,
        layout: str | None = None,
        stopped_because: str | None = None,
        estimate: dict[str, JSON] | None = None,
        identity: str | None = None,
        retries: Sequence[Retry] = (),
        failed: Sequence[FailedItem] = (),
    ) -> None:
        """One transaction: new total, its batches in the ledger, errors, the retries and
        failed items its batches left; all or nothing. A retry batch applied here leaves
        `pending`."""
        now = time.time()
        seq = self._seq + 1
        meta: dict[str, Any] = {"total": total, "items": items, "updated_at": now, "seq": seq}
        if self._new_id:
            meta["id"] = self._id
        if end is not None:
            meta["end_batches"], meta["end_items"] = end.batches, end.items
        optional = {
            "layout": layout,
            "identity": identity,
            "stopped_because": stopped_because,
            "estimate": estimate,
        }
        meta |= {k: v for k, v in optional.items() if v is not None}
        try:
            with write_transaction(self.db):
                self._write_meta(meta)
                self._write_batches(applied, errors, now)
                self._write_outcomes(applied, retries, failed, now)
                if estimate is not None and applied:
                    self.db.execute(
                        "INSERT INTO history(items, at, estimate) VALUES (?, ?, ?)",
                        (items, now, json.dumps(estimate)),
                    )
                _seal(self.db, self.path, self._ledger + len(applied))
        except sqlite3.OperationalError as exc:
            raise CheckpointError(
                f"cannot write checkpoint {self.path} ({exc}); nothing was lost: the last "
                "commit is intact and uncommitted results stay on the queue. Free disk space "
                "and restart the reducer"
            ) from None
        self._seq, self._ledger, self._new_id = seq, self._ledger + len(applied), False
        try:
            write_seq(self.path, self._id, seq)
        except OSError as exc:
            raise CheckpointError(
                f"cannot record commit {seq} of checkpoint {self.path} ({exc}); the commit "
                "itself is intact and uncommitted results stay on the queue. Free disk space "
                "and restart the reducer"
            ) from None

    def _write_batches(
        self, applied: Sequence[tuple[str, int]], errors: Sequence[ErrorRecord], now: float
    ) -> None:
        """The ledger gets the applied batches; an error stored for one of them goes."""
        self.db.executemany(
            "INSERT INTO ledger(batch, items, applied_at) VALUES (?,?,?)",
            [(b, n, now) for b, n in applied],
        )
        self.db.executemany(
            "INSERT INTO errors(batch, job_id, reason, record, updated_at) "
            "VALUES (?,?,?,?,?) ON CONFLICT(batch) DO UPDATE SET job_id=excluded.job_id,"
            " reason=excluded.reason, record=excluded.record, "
            "updated_at=excluded.updated_at",
            [(e.batch, e.job_id, e.reason, json.dumps(e.__dict__), now) for e in errors],
        )
        self.db.executemany("DELETE FROM errors WHERE batch = ?", [(b,) for b, _ in applied])

    def _write_outcomes(
        self,
        applied: Sequence[tuple[str, int]],
        retries: Sequence[Retry],
        failed: Sequence[FailedItem],
        now: float,
    ) -> None:
        """A retry batch applied leaves `pending`; new retries and failed items come in."""
        self.db.executemany(
            "DELETE FROM pending WHERE batch = ?",
            [(b,) for b, _ in applied if b.endswith(RETRY_SUFFIX)],
        )
        self.db.executemany(
            "INSERT INTO pending(batch, record, put) VALUES (?, ?, 0)",
            [(r.batch, retry_json(r)) for r in retries],
        )
        self.db.executemany(
            "INSERT OR REPLACE INTO failed(batch, item, record, failed_at) VALUES (?, ?, ?, ?)",
            [(f.batch, json.dumps(f.item), json.dumps(asdict(f)), now) for f in failed],
        )

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
        db.executescript(SCHEMA)
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
        _seal(db, path, ledger=0)
    finally:
        db.close()
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def _seal(db: sqlite3.Connection, path: Path, ledger: int) -> None:
    """Store the digest of the meta values just written, inside their transaction."""
    db.execute(
        "INSERT INTO meta(key, value) VALUES ('digest', ?) "
        "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (json.dumps(digest(read_meta(db, path), ledger)),),
    )
