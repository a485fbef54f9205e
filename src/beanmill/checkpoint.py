"""The reducer's checkpoint: total, ledger of applied batches and stored errors, in one SQLite file.

Every commit writes the new total and the batch IDs it contains in one transaction, so the
ledger can never disagree with the total: that is what makes duplicates harmless.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from beanmill.errors import CheckpointError
from beanmill.files import ensure_private_dir, fsync_dir, lock_file, lock_holder
from beanmill.integrity import (
    check_digest,
    check_not_rolled_back,
    digest,
    read_seq,
    write_seq,
)
from beanmill.jsontypes import JSON
from beanmill.outcomes import FailedItem, Retry
from beanmill.wire import BARE_PREFIX, RETRY_SUFFIX, EndRecord, ErrorRecord, retry_batch_id

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


def _corrupt(path: Path, exc: Exception) -> CheckpointError:
    return CheckpointError(
        f"checkpoint {path} is unreadable ({exc}); it was left untouched: restore it from a "
        "backup, or move it away to start the totals over (see docs/operations.md)"
    )


def _connect(path: Path, read_only: bool) -> sqlite3.Connection:
    uri = f"file:{path}?mode={'ro' if read_only else 'rw'}"
    conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=10.0)
    conn.execute("PRAGMA busy_timeout = 10000")
    return conn


@contextlib.contextmanager
def _write_transaction(db: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception, the COMMIT's own included."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


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
            self.db = _connect(path, read_only=False)
        except sqlite3.DatabaseError as exc:
            raise _corrupt(path, exc) from None
        try:
            self._verify(job)  # before any write: a foreign file is refused untouched
            self.db.executescript(SCHEMA)  # tables added since 0.1, on an older checkpoint
            self.db.execute("PRAGMA journal_mode = WAL")
            self.db.execute("PRAGMA synchronous = FULL")
        except (sqlite3.DatabaseError, CheckpointError) as exc:
            self.db.close()
            if isinstance(exc, CheckpointError):
                raise
            raise _corrupt(path, exc) from None
        return self.db

    def _verify(self, job: str) -> None:
        sidecar = read_seq(self.path)  # first: it may only be behind what the file holds
        check = self.db.execute("PRAGMA quick_check").fetchone()
        if check is None or check[0] != "ok":
            raise _corrupt(self.path, sqlite3.DatabaseError(str(check)))
        meta = _read_meta(self.db, self.path)
        if meta.get("schema") != SCHEMA_VERSION:
            raise _corrupt(self.path, sqlite3.DatabaseError("not a beanmill checkpoint"))
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
        return _snapshot(self.db, self.path)

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
        return [_retry(b, r) for b, r in rows]

    def mark_put(self, batch_ids: Sequence[str]) -> None:
        with _write_transaction(self.db):
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
        with _write_transaction(self.db):
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
        if layout is not None:
            meta["layout"] = layout
        if identity is not None:
            meta["identity"] = identity
        if stopped_because is not None:
            meta["stopped_because"] = stopped_because
        if estimate is not None:
            meta["estimate"] = estimate
        try:
            with _write_transaction(self.db):
                self._write_meta(meta)
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
                self.db.executemany(
                    "DELETE FROM errors WHERE batch = ?", [(b,) for b, _ in applied]
                )
                self.db.executemany(
                    "DELETE FROM pending WHERE batch = ?",
                    [(b,) for b, _ in applied if b.endswith(RETRY_SUFFIX)],
                )
                self.db.executemany(
                    "INSERT INTO pending(batch, record, put) VALUES (?, ?, 0)",
                    [
                        (
                            r.batch,
                            _retry_json(r),
                        )
                        for r in retries
                    ],
                )
                self.db.executemany(
                    "INSERT OR REPLACE INTO failed(batch, item, record, failed_at) "
                    "VALUES (?, ?, ?, ?)",
                    [(f.batch, json.dumps(f.item), json.dumps(asdict(f)), now) for f in failed],
                )
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


def _read_meta(db: sqlite3.Connection, path: Path) -> dict[str, Any]:
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


def _seal(db: sqlite3.Connection, path: Path, ledger: int) -> None:
    """Store the digest of the meta values just written, inside their transaction."""
    db.execute(
        "INSERT INTO meta(key, value) VALUES ('digest', ?) "
        "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (json.dumps(digest(_read_meta(db, path), ledger)),),
    )


def _snapshot(
    db: sqlite3.Connection, path: Path, sidecar: tuple[str, int] | None = None
) -> Snapshot:
    """What the file says, refused if its digest disagrees or it is behind `sidecar`."""
    db.execute("BEGIN")
    try:
        meta = _read_meta(db, path)
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
        pending = _count_rows(db, "pending")
        failed = _count_rows(db, "failed")
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


def _count_rows(db: sqlite3.Connection, table: str) -> int:
    """Rows of a table added since 0.1; an older checkpoint, read-only, has none."""
    try:
        (n,) = db.execute(f"SELECT count(*) FROM {table}").fetchone()
    except sqlite3.OperationalError:
        return 0
    return int(n)


def _retry_json(r: Retry) -> str:
    return json.dumps({"items": list(r.items), "attempt": r.attempt, "delay": r.delay})


def _retry(batch: str, record: str) -> Retry:
    obj = json.loads(record)
    return Retry(batch, tuple(obj["items"]), int(obj["attempt"]), int(obj["delay"]))


def read_snapshot(path: Path) -> Snapshot:
    """Read-only look at a checkpoint, safe while the reducer writes (WAL readers never block)."""
    sidecar = read_seq(path) if path.is_file() else None
    with _opened(path) as db:
        return _snapshot(db, path, sidecar)


@contextlib.contextmanager
def _opened(path: Path, read_only: bool = True) -> Iterator[sqlite3.Connection]:
    """A short connection for the commands that read (or tidy) a checkpoint: a missing or
    unreadable file is one clear CheckpointError."""
    _require(path)
    try:
        db = _connect(path, read_only)
        try:
            yield db
        finally:
            db.close()
    except (sqlite3.DatabaseError, KeyError) as exc:
        raise _corrupt(path, exc) from None


def _require(path: Path) -> None:
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}: check --checkpoint / --data-dir")


def read_errors(path: Path) -> dict[str, dict[str, Any]]:
    """Stored error records by batch ID, for `beanmill buried`."""
    with _opened(path) as db:
        return {b: json.loads(r) for b, r in db.execute("SELECT batch, record FROM errors")}


def forget_errors(path: Path, batches: Sequence[str]) -> int:
    """Drop the stored errors of these batches, whose jobs an operator deleted; how many.

    One short write transaction: safe while the reducer runs (it waits out a commit)."""
    with _opened(path, read_only=False) as db, _write_transaction(db):
        return sum(db.execute("DELETE FROM errors WHERE batch = ?", (b,)).rowcount for b in batches)


def read_history(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(items, estimate) at every commit, oldest first, for the convergence plot."""
    with _opened(path) as db:
        rows = db.execute("SELECT items, estimate FROM history ORDER BY items, at")
        return [(n, json.loads(e)) for n, e in rows]


def read_failed(path: Path) -> list[FailedItem]:
    """Items that failed their last attempt, for `beanmill buried`."""
    with _opened(path) as db:
        try:
            rows = db.execute("SELECT record FROM failed ORDER BY batch, item").fetchall()
        except sqlite3.OperationalError:
            return []  # a checkpoint from before per-item failures
        return [FailedItem(**json.loads(r)) for (r,) in rows]


def _unused_requeue_id(db: sqlite3.Connection, batch: str) -> str:
    """`<batch>+<n>~`: a retry batch ID no ledger entry or schedule has used (items of one
    batch may be requeued in several goes)."""
    n = 1
    while True:
        candidate = retry_batch_id(f"{batch}+{n}")
        used = db.execute(
            "SELECT 1 FROM ledger WHERE batch = ? UNION ALL SELECT 1 FROM pending WHERE batch = ?",
            (candidate, candidate),
        ).fetchone()
        if used is None:
            return candidate
        n += 1


def requeue_failed(path: Path, items: Sequence[str] | None = None) -> list[Retry]:
    """Schedule failed items again, attempt 0, as the retry batch of the batch they failed in
    (an ID never used before); the reducer puts them at its next start
    or commit. `items`: only these item IDs (as text); None: all. Safe while the reducer runs."""
    retries: list[Retry] = []
    with _opened(path, read_only=False) as db, _write_transaction(db):
        by_batch: dict[str, list[tuple[str, FailedItem]]] = {}
        for key, record in db.execute("SELECT item, record FROM failed ORDER BY batch, item"):
            failed = FailedItem(**json.loads(record))
            if items is None or str(failed.item) in items:
                by_batch.setdefault(failed.batch, []).append((key, failed))
        for batch, entries in by_batch.items():
            retry = Retry(_unused_requeue_id(db, batch), tuple(f.item for _, f in entries), 0, 0)
            db.execute(
                "INSERT OR REPLACE INTO pending(batch, record, put) VALUES (?, ?, 0)",
                (retry.batch, _retry_json(retry)),
            )
            db.executemany(
                "DELETE FROM failed WHERE batch = ? AND item = ?", [(batch, k) for k, _ in entries]
            )
            retries.append(retry)
    return retries
