"""What operators do to a checkpoint besides reading its snapshot: stored errors, failed
items and their requeue, the estimate's history. Short connections, safe while the reducer
runs (WAL readers never block; a write waits out a commit)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from beanmill.checkpoint_store import opened, retry_json, write_transaction
from beanmill.ids import requeue_batch_id
from beanmill.outcomes import FailedItem, Retry


def read_errors(path: Path) -> dict[str, dict[str, Any]]:
    """Stored error records by batch ID, for `beanmill buried`."""
    with opened(path) as db:
        return {b: json.loads(r) for b, r in db.execute("SELECT batch, record FROM errors")}


def forget_errors(path: Path, batches: Sequence[str]) -> int:
    """Drop the stored errors of these batches, whose jobs an operator deleted; how many.

    One short write transaction: safe while the reducer runs (it waits out a commit)."""
    with opened(path, read_only=False) as db, write_transaction(db):
        return sum(db.execute("DELETE FROM errors WHERE batch = ?", (b,)).rowcount for b in batches)


def read_history(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(items, estimate) at every commit, oldest first, for the convergence plot."""
    with opened(path) as db:
        rows = db.execute("SELECT items, estimate FROM history ORDER BY items, at")
        return [(n, json.loads(e)) for n, e in rows]


def read_failed(path: Path) -> list[FailedItem]:
    """Items that failed their last attempt, for `beanmill buried`."""
    with opened(path) as db:
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
        candidate = requeue_batch_id(batch, n)
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
    with opened(path, read_only=False) as db, write_transaction(db):
        by_batch: dict[str, list[tuple[str, FailedItem]]] = {}
        for key, record in db.execute("SELECT item, record FROM failed ORDER BY batch, item"):
            failed = FailedItem(**json.loads(record))
            if items is None or str(failed.item) in items:
                by_batch.setdefault(failed.batch, []).append((key, failed))
        for batch, entries in by_batch.items():
            retry = Retry(_unused_requeue_id(db, batch), tuple(f.item for _, f in entries), 0, 0)
            db.execute(
                "INSERT OR REPLACE INTO pending(batch, record, put) VALUES (?, ?, 0)",
                (retry.batch, retry_json(retry)),
            )
            db.executemany(
                "DELETE FROM failed WHERE batch = ? AND item = ?", [(batch, k) for k, _ in entries]
            )
            retries.append(retry)
    return retries
