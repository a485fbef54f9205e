"""The checkpoint's file: its schema, its connections, and the snapshot every reader takes.

Shared by the reducer's writer (checkpoint.py) and the operator commands (checkpoint_ops.py).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from beanmill.errors import CheckpointError
from beanmill.ids import BARE_PREFIX, RETRY_SUFFIX
from beanmill.integrity import check_digest, check_not_rolled_back, read_seq
from beanmill.jsontypes import JSON
from beanmill.outcomes import Retry

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS ledger (
    batch TEXT PRIMARY KEY, items INTEGER NOT NULL, applied_at REAL NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS history (
    items INTEGER NOT NULL, at REAL NOT NULL, estimate TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS errors (
    batch TEXT PRIMARY KEY, job_id INTEGER, reason TEXT, record TEXT NOT NULL,
    updated_at REAL NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS pending (
    batch TEXT PRIMARY KEY, record TEXT NOT NULL, put INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS failed (
    batch TEXT NOT NULL, item TEXT NOT NULL, record TEXT NOT NULL, failed_at REAL NOT NULL,
    PRIMARY KEY (batch, item)) WITHOUT ROWID;
"""


@dataclass(frozen=True)
class Snapshot:
    """What the checkpoint says, as `status` shows it."""

    job: str
    total: JSON
    items: int
    batches: int
    bare_batches: int
    end_batches: int | None
    end_items: int | None
    errors: int
    layout: str | None
    stopped_because: str | None
    estimate: dict[str, JSON] | None
    created_at: float
    updated_at: float
    #: Retry batches in the ledger: they count items, not batches of the producer's layout.
    retry_batches: int = 0
    #: Retry batches scheduled and not applied yet: the job is not finished while any are.
    pending: int = 0
    failed_items: int = 0
    #: Ledger entries of the job's own layout: only these complete it.
    layout_batches: int = 0
    identity: str | None = None

    @property
    def producer_batches(self) -> int:
        return self.layout_batches

    @property
    def foreign_batches(self) -> int:
        """Batches of no layout (a foreign producer's): counted, reported apart, and never
        standing in for a batch of the layout."""
        return self.batches - self.bare_batches - self.retry_batches - self.layout_batches

    @property
    def complete(self) -> bool:
        if self.stopped_because is not None:
            return True
        return (
            self.end_batches is not None
            and self.producer_batches >= self.end_batches
            and self.pending == 0
        )

    def as_json(self) -> dict[str, JSON]:
        return {
            "job": self.job,
            "total": self.total,
            "items": self.items,
            "batches": self.batches,
            "end_batches": self.end_batches,
            "end_items": self.end_items,
            "complete": self.complete,
            "errors": self.errors,
            "failed_items": self.failed_items,
            "retries_pending": self.pending,
            "foreign_batches": self.foreign_batches,
            "identity": self.identity,
            "stopped_because": self.stopped_because,
            "estimate": self.estimate,
            "updated_at": self.updated_at,
        }


def corrupt(path: Path, exc: Exception) -> CheckpointError:
    return CheckpointError(
        f"checkpoint {path} is unreadable ({exc}); it was left untouched: restore it from a "
        "backup, or move it away to start the totals over (see docs/operations.md)"
    )


def connect_db(path: Path, read_only: bool) -> sqlite3.Connection:
    uri = f"file:{path}?mode={'ro' if read_only else 'rw'}"
    conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=10.0)
    conn.execute("PRAGMA busy_timeout = 10000")
    return conn


@contextlib.contextmanager
def write_transaction(db: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception, the COMMIT's own included."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def read_meta(db: sqlite3.Connection, path: Path) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    for key, value in db.execute("SELECT key, value FROM meta"):
        try:
            meta[key] = json.loads(value)
        except (ValueError, TypeError, RecursionError):
            raise CheckpointError(
                f"checkpoint {path} has a damaged {key!r} value (not JSON); it was left "
                "untouched: restore it from a backup, or move it away to start the totals "
                "over (see docs/operations.md)"
            ) from None
    return meta


def snapshot_of(
    db: sqlite3.Connection, path: Path, sidecar: tuple[str, int] | None = None
) -> Snapshot:
    """What the file says, refused if its digest disagrees or it is behind `sidecar`."""
    db.execute("BEGIN")
    try:
        meta = read_meta(db, path)
        batches, bare, retry = db.execute(
            "SELECT count(*), count(*) FILTER (WHERE batch >= ? AND batch < ?), "
            "count(*) FILTER (WHERE batch LIKE ?) FROM ledger",
            (BARE_PREFIX, BARE_PREFIX[:-1] + chr(ord(BARE_PREFIX[-1]) + 1), "%" + RETRY_SUFFIX),
        ).fetchone()
        layout = meta.get("layout")
        (in_layout,) = db.execute(
            "SELECT count(*) FROM ledger WHERE batch LIKE ? AND batch NOT LIKE ?",
            (f"{layout}-%", "%" + RETRY_SUFFIX),
        ).fetchone()
        (errors,) = db.execute("SELECT count(*) FROM errors").fetchone()
        pending = count_rows(db, "pending")
        failed = count_rows(db, "failed")
    finally:
        db.execute("COMMIT")
    check_digest(path, meta, batches)
    check_not_rolled_back(path, sidecar, meta)
    return Snapshot(
        job=meta["job"],
        total=meta.get("total"),
        items=meta.get("items", 0),
        batches=batches,
        bare_batches=bare,
        end_batches=meta.get("end_batches"),
        end_items=meta.get("end_items"),
        errors=errors,
        layout=meta.get("layout"),
        stopped_because=meta.get("stopped_because"),
        estimate=meta.get("estimate"),
        created_at=meta.get("created_at", 0.0),
        updated_at=meta.get("updated_at", 0.0),
        retry_batches=retry,
        pending=pending,
        failed_items=failed,
        layout_batches=in_layout if layout is not None else 0,
        identity=meta.get("identity"),
    )


def count_rows(db: sqlite3.Connection, table: str) -> int:
    """Rows of a table added since 0.1; an older checkpoint, read-only, has none."""
    try:
        (n,) = db.execute(f"SELECT count(*) FROM {table}").fetchone()
    except sqlite3.OperationalError:
        return 0
    return int(n)


def retry_json(r: Retry) -> str:
    return json.dumps({"items": list(r.items), "attempt": r.attempt, "delay": r.delay})


def retry_of(batch: str, record: str) -> Retry:
    obj = json.loads(record)
    return Retry(batch, tuple(obj["items"]), int(obj["attempt"]), int(obj["delay"]))


def read_snapshot(path: Path) -> Snapshot:
    """Read-only look at a checkpoint, safe while the reducer writes (WAL readers never block)."""
    sidecar = read_seq(path) if path.is_file() else None
    with opened(path) as db:
        return snapshot_of(db, path, sidecar)


@contextlib.contextmanager
def opened(path: Path, read_only: bool = True) -> Iterator[sqlite3.Connection]:
    """A short connection for the commands that read (or tidy) a checkpoint: a missing or
    unreadable file is one clear CheckpointError."""
    require_file(path)
    try:
        db = connect_db(path, read_only)
        try:
            yield db
        finally:
            db.close()
    except (sqlite3.DatabaseError, KeyError) as exc:
        raise corrupt(path, exc) from None


def require_file(path: Path) -> None:
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}: check --checkpoint / --data-dir")
