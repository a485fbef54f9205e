"""The building of one commit from the staged result jobs: the fold into the total, and the
ledger rows, errors, retries and failed items it writes. No I/O."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from beanmill.checkpoint import Snapshot
from beanmill.ids import malformed_batch_id, retry_batch_id
from beanmill.jsontypes import JSON
from beanmill.mapping import summary
from beanmill.outcomes import FailedItem, Retry
from beanmill.wire import EndRecord, ErrorRecord, Partial, dumps

Rereduce = Callable[[Sequence[JSON]], JSON]


@dataclass
class StagedJob:
    """One result job's contribution: applied whole or (if unfoldable) not at all."""

    job_id: int
    body: bytes
    entries: list[Partial] = field(default_factory=list)
    error: ErrorRecord | None = None
    end: EndRecord | None = None

    @property
    def values(self) -> list[JSON]:
        return [p.value for p in self.entries if p.items > 0]


@dataclass(frozen=True)
class Bury:
    """A result job to bury, and the record that tells operators why."""

    job_id: int
    reason: str
    record: ErrorRecord


@dataclass(frozen=True)
class Commit:
    """Everything one checkpoint transaction writes, then the jobs to delete or bury."""

    total: JSON
    items: int
    applied: list[tuple[str, int]]
    errors: list[ErrorRecord]
    end: EndRecord | None
    layout: str | None
    identity: str | None
    retries: list[Retry]
    failed: list[FailedItem]
    job_ids: list[int]
    buried: list[Bury]


def build_commit(
    jobs: list[StagedJob],
    snap: Snapshot,
    rereduce: Rereduce,
    layout: str | None,
    identity: str | None,
) -> Commit:
    """Fold `jobs` onto `snap`; results that cannot be folded are set aside to be buried."""
    has_base = snap.items > 0
    base = [snap.total] if has_base else []
    good, buried = jobs, list[Bury]()
    values = [v for job in good for v in job.values]
    total = snap.total
    if values:
        try:
            total = rereduce([*base, *values])
            dumps(total)
        except Exception:  # the user's rereduce, or a value it cannot take: find which
            total, good, buried = _fold_one_by_one(jobs, snap, rereduce, base)
    return _commit(total, good, buried, snap, layout, identity)


def _fold_one_by_one(
    jobs: list[StagedJob], snap: Snapshot, rereduce: Rereduce, base: list[JSON]
) -> tuple[JSON, list[StagedJob], list[Bury]]:
    acc = list(base)
    good: list[StagedJob] = []
    buried: list[Bury] = []
    for job in jobs:
        if not job.values:
            good.append(job)
            continue
        try:
            folded = rereduce([*acc, *job.values])
            dumps(folded)
        except Exception as exc:
            reason = f"rereduce() cannot fold this result: {type(exc).__name__}: {exc}"[:500]
            buried.append(Bury(job.job_id, reason, _unfoldable(job, reason, exc)))
            continue
        acc = [folded]
        good.append(job)
    return (acc[0] if acc else snap.total), good, buried


def _commit(
    total: JSON,
    good: list[StagedJob],
    buried: list[Bury],
    snap: Snapshot,
    layout: str | None,
    identity: str | None,
) -> Commit:
    applied: dict[str, int] = {}
    errors: dict[str, ErrorRecord] = {}
    retries: list[Retry] = []
    failed: list[FailedItem] = []
    items = 0
    end = None
    for job in good:
        if job.error is not None and job.error.batch not in applied:
            errors[job.error.batch] = job.error
        end = job.end or end
        for partial in job.entries:
            per_batch = partial.items // len(partial.batches)
            for b in partial.batches:
                applied[b] = per_batch
                errors.pop(b, None)
            items += partial.items
            retries.extend(_retries(partial))
            failed.extend(_failed_items(partial))
    return Commit(
        total=total,
        items=snap.items + items,
        applied=list(applied.items()),
        errors=[*errors.values(), *(b.record for b in buried)],
        end=end,
        layout=layout,
        identity=identity,
        retries=retries,
        failed=failed,
        job_ids=[job.job_id for job in good],
        buried=buried,
    )


def _retries(partial: Partial) -> list[Retry]:
    if not partial.failed or partial.final:
        return []
    items = tuple(i for f in partial.failed for i in f.items)
    return [
        Retry(retry_batch_id(partial.batches[0]), items, partial.attempt + 1, partial.retry_delay)
    ]


def _failed_items(partial: Partial) -> list[FailedItem]:
    if not partial.final:
        return []
    return [
        FailedItem(
            batch=partial.batches[0],
            item=item,
            error=f.error,
            traceback=f.traceback,
            attempts=partial.attempt + 1,
            host=partial.host,
        )
        for f in partial.failed
        for item in f.items
    ]


def _unfoldable(job: StagedJob, reason: str, exc: Exception) -> ErrorRecord:
    return ErrorRecord(
        batch=malformed_batch_id(job.body),
        job_id=job.job_id,
        attempts=1,
        reason="unfoldable",
        exception=reason,
        traceback=summary(exc),
        host="",
    )
