"""Is the checkpoint what the reducer last committed? A digest over the values that make the
total, and the commit sequence number kept beside the checkpoint to notice a rollback.

A flipped bit in the stored total is caught by the digest. A checkpoint that went back in
time (its `-wal` file lost after a crash, an old copy put back) is internally consistent, so
the digest cannot see it: the sequence number in `<checkpoint>.seq`, written after every
commit, can. The checkpoint's random `id` ties the two files together, so a sidecar left by
a checkpoint that was moved away is not held against a new one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from beanmill.errors import CheckpointError
from beanmill.files import atomic_write

#: The meta values the total depends on; with the ledger's size, what the digest covers.
DIGESTED = (
    "job",
    "total",
    "items",
    "estimate",
    "layout",
    "end_batches",
    "end_items",
    "stopped_because",
    "seq",
)


def digest(meta: Mapping[str, Any], ledger: int) -> str:
    """sha256 of a canonical JSON of the digested values and the ledger's size."""
    values = {key: meta.get(key) for key in DIGESTED}
    canonical = json.dumps([values, ledger], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def check_digest(path: Path, meta: Mapping[str, Any], ledger: int) -> None:
    """Refuse a checkpoint whose values do not match its digest (none yet: written by 0.1)."""
    stored = meta.get("digest")
    if stored is not None and stored != digest(meta, ledger):
        raise CheckpointError(
            f"checkpoint {path} fails its integrity check (the stored total, items or ledger "
            "do not match their digest); it was left untouched: restore it from a backup, or "
            "move it away to start the totals over (see docs/operations.md)"
        )


def seq_path(path: Path) -> Path:
    return path.with_name(path.name + ".seq")


def read_seq(path: Path) -> tuple[str, int] | None:
    """(checkpoint id, last commit) from the sidecar; None if there is none."""
    side = seq_path(path)
    try:
        data = json.loads(side.read_bytes())
        return str(data["id"]), int(data["seq"])
    except FileNotFoundError:
        return None
    except (ValueError, TypeError, KeyError) as exc:
        raise CheckpointError(
            f"{side} is damaged ({type(exc).__name__}): it records how far checkpoint {path} "
            "had got, to notice a rollback; delete it if the checkpoint is known to be good"
        ) from None


def write_seq(path: Path, checkpoint_id: str, seq: int) -> None:
    """After a commit: that commit's number, atomically and durably."""
    data = json.dumps({"id": checkpoint_id, "seq": seq}).encode() + b"\n"
    atomic_write(seq_path(path), data)


def check_not_rolled_back(
    path: Path, sidecar: tuple[str, int] | None, meta: Mapping[str, Any]
) -> None:
    """Refuse a checkpoint older than the last commit recorded beside it.

    `sidecar` is read before the checkpoint: it is written after each commit, so it can only
    be behind the checkpoint, never ahead, unless the checkpoint went back."""
    if sidecar is None or sidecar[0] != meta.get("id"):
        return
    held, made = int(meta.get("seq", 0)), sidecar[1]
    if held < made:
        raise CheckpointError(
            f"checkpoint {path} was rolled back: it holds commit {held}, but commit {made} was "
            "made, and the results applied since were already deleted from the queue, so its "
            "total would miss them. If its -wal file was lost, put it back; if you cannot, or "
            "restored a backup on purpose, run the reducer with --rebuild (or `beanmill run "
            "--rebuild`): the producer then puts again every batch the checkpoint lacks "
            f"({seq_path(path).name} holds the last commit; see docs/operations.md)"
        )
