"""The reducer's checkpoint: total, ledger of applied batches and stored errors, in one SQLite file.

Every commit writes the new total and the batch IDs it contains in one transaction, so the
ledger can never disagree with the total: that is what makes duplicates harmless.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from typing import Any

from beanmill.checkpoint_file import CheckpointFile, lock_path, seal

# The operators' side of the checkpoint, importable from here as before.
from beanmill.checkpoint_ops import (
    forget_errors,
    read_errors,
    read_failed,
    read_history,
    requeue_failed,
)
from beanmill.checkpoint_store import (
    Snapshot,
    read_snapshot,
    retry_json,
    retry_of,
    snapshot_of,
    write_transaction,
)
from beanmill.errors import CheckpointError
from beanmill.ids import RETRY_SUFFIX
from beanmill.integrity import write_seq
from beanmill.jsontypes import JSON
from beanmill.outcomes import FailedItem, Retry
from beanmill.wire import EndRecord, ErrorRecord

__all__ = [
    "Checkpoint",
    "CheckpointFile",
    "Snapshot",
    "forget_errors",
    "lock_path",
    "read_errors",
    "read_failed",
    "read_history",
    "read_snapshot",
    "requeue_failed",
]


class Checkpoint(CheckpointFile):
    """The reducer's handle: its reads of the ledger and the commits, on the file that
    CheckpointFile opened and locked."""

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
                _write_batches(self.db, applied, errors, now)
                _write_outcomes(self.db, applied, retries, failed, now)
                if estimate is not None and applied:
                    self.db.execute(
                        "INSERT INTO history(items, at, estimate) VALUES (?, ?, ?)",
                        (items, now, json.dumps(estimate)),
                    )
                seal(self.db, self.path, self._ledger + len(applied))
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
    db: sqlite3.Connection,
    applied: Sequence[tuple[str, int]],
    errors: Sequence[ErrorRecord],
    now: float,
) -> None:
    """The ledger gets the applied batches; an error stored for one of them goes."""
    db.executemany(
        "INSERT INTO ledger(batch, items, applied_at) VALUES (?,?,?)",
        [(b, n, now) for b, n in applied],
    )
    db.executemany(
        "INSERT INTO errors(batch, job_id, reason, record, updated_at) "
        "VALUES (?,?,?,?,?) ON CONFLICT(batch) DO UPDATE SET job_id=excluded.job_id,"
        " reason=excluded.reason, record=excluded.record, "
        "updated_at=excluded.updated_at",
        [(e.batch, e.job_id, e.reason, json.dumps(e.__dict__), now) for e in errors],
    )
    db.executemany("DELETE FROM errors WHERE batch = ?", [(b,) for b, _ in applied])


def _write_outcomes(
    db: sqlite3.Connection,
    applied: Sequence[tuple[str, int]],
    retries: Sequence[Retry],
    failed: Sequence[FailedItem],
    now: float,
) -> None:
    """A retry batch applied leaves `pending`; new retries and failed items come in."""
    db.executemany(
        "DELETE FROM pending WHERE batch = ?",
        [(b,) for b, _ in applied if b.endswith(RETRY_SUFFIX)],
    )
    db.executemany(
        "INSERT INTO pending(batch, record, put) VALUES (?, ?, 0)",
        [(r.batch, retry_json(r)) for r in retries],
    )
    db.executemany(
        "INSERT OR REPLACE INTO failed(batch, item, record, failed_at) VALUES (?, ?, ?, ?)",
        [(f.batch, json.dumps(f.item), json.dumps(asdict(f)), now) for f in failed],
    )
