"""The producer's cursor: how many batches are surely on the queue, written atomically."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from beanmill.errors import CursorError
from beanmill.files import atomic_write, ensure_private_dir
from beanmill.identity import Population, changed_population

CURSOR_VERSION = 1


@dataclass(frozen=True)
class Cursor:
    """Batches before `next_batch` were put (and acknowledged) before this was written."""

    job: str
    batch_size: int
    order: str
    seed: int | None
    next_batch: int = 0
    items_put: int = 0
    #: Jobs put: more than next_batch when a batch too big for beanstalkd's -z was split.
    jobs_put: int = 0
    finished: bool = False
    #: The job's identity (identity.py): made once, when the job starts.
    identity: str = ""
    run: str = ""
    #: An indexable population's fingerprint, or a stream's digest of the items put so far.
    population_size: int | None = None
    population_digest: str | None = None
    stream_digest: str | None = None

    def same_run(self, other: Cursor) -> bool:
        return (self.job, self.batch_size, self.order, self.seed) == (
            other.job,
            other.batch_size,
            other.order,
            other.seed,
        )


FIELD_TYPES: dict[str, type | tuple[type, ...]] = {
    "job": str,
    "batch_size": int,
    "order": str,
    "seed": (int, type(None)),
    "next_batch": int,
    "items_put": int,
    "jobs_put": int,
    "finished": bool,
    "identity": str,
    "run": str,
    "population_size": (int, type(None)),
    "population_digest": (str, type(None)),
    "stream_digest": (str, type(None)),
}


def load_cursor(path: Path) -> Cursor | None:
    """The saved cursor, None if there is none; a damaged one is refused, never replaced."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    fix = (
        f"the producer cursor {path} is damaged; it was left as it is. Delete it to "
        "re-put every batch from the start (already applied batches are skipped)"
    )
    try:
        data = json.loads(raw)
        if data.pop("v") != CURSOR_VERSION:
            raise CursorError(f"{fix} (unknown version)")
        data.setdefault("jobs_put", data.get("next_batch", 0))  # written before splitting
        cursor = Cursor(**data)
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
        raise CursorError(f"{fix} ({type(exc).__name__})") from None
    for name, kind in FIELD_TYPES.items():
        value = getattr(cursor, name)
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            raise CursorError(f"{fix} ({name} is {value!r})")
    if cursor.next_batch < 0 or cursor.items_put < 0 or cursor.batch_size < 1:
        raise CursorError(f"{fix} (negative counts)")
    return cursor


def save_cursor(path: Path, cursor: Cursor) -> None:
    ensure_private_dir(path.parent)
    atomic_write(path, json.dumps({"v": CURSOR_VERSION, **asdict(cursor)}).encode() + b"\n")


def check_resumable(saved: Cursor, wanted: Cursor, path: Path) -> None:
    """Refuse to mix batch layouts: other batch sizes or orders would count items twice."""
    if not saved.same_run(wanted):
        raise CursorError(
            f"the cursor {path} was written for job={saved.job} batch_size={saved.batch_size} "
            f"order={saved.order} seed={saved.seed}; rerun with those settings, or delete it "
            "and the checkpoint to start over"
        )


def check_population(saved: Cursor, now: Population | None, path: Path) -> None:
    """Refuse to resume a job whose items() changed: the total would match neither."""
    if saved.population_size is None or saved.population_digest is None:
        return  # a stream (checked as it is read again), or a cursor from before 0.2
    then = Population(saved.population_size, saved.population_digest)
    if now != then:
        why = changed_population(then, now) if now else "items() is no longer a sequence"
        raise CursorError(
            f"{why} (cursor {path}): the total would match neither; run it under a new job "
            f"name, or `beanmill reset --job {saved.job}` to start it over"
        )
