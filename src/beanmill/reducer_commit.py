"""The reducer's commit, in its order: the checkpoint transaction first, then its result jobs
deleted (or the unfoldable ones buried). A crash between the two leaves duplicates, which the
ledger absorbs, never a loss."""

from __future__ import annotations

import contextlib

import greenstalk
import structlog

from beanmill.beanstalk.connection import Queue
from beanmill.checkpoint import Checkpoint
from beanmill.crashpoint import crashpoint
from beanmill.ending import Estimates
from beanmill.fold import Commit

log = structlog.get_logger()


def write(
    ckpt: Checkpoint,
    change: Commit,
    estimator: Estimates | None,
    stopped_because: str | None,
) -> None:
    """One checkpoint transaction for what the fold built, with the estimate of its total
    when there is an `estimator` (none before the first batch)."""
    estimate = estimator.estimate(change.total) if estimator is not None else None
    ckpt.commit(
        total=change.total,
        estimate=estimate,
        items=change.items,
        applied=change.applied,
        errors=change.errors,
        end=change.end,
        layout=change.layout,
        identity=change.identity,
        stopped_because=stopped_because,
        retries=change.retries,
        failed=change.failed,
    )
    crashpoint("reducer.after_commit")
    if change.retries:
        crashpoint("reducer.after_commit_with_failures")
    log.debug("checkpoint_committed", batches=len(change.applied), jobs=len(change.job_ids))


def settle(queue: Queue, change: Commit) -> None:
    """After the commit: bury the unfoldable result jobs, delete the applied ones."""
    for bury in change.buried:
        # Its reservation may have ended (TTR, restart): then it comes back, judged again.
        with contextlib.suppress(greenstalk.NotFoundError):
            queue.bury(greenstalk.Job(bury.job_id, b""))
        log.error("result_unfoldable_buried", job_id=bury.job_id, reason=bury.reason)
    half = len(change.job_ids) // 2
    queue.delete_many(change.job_ids[:half])
    crashpoint("reducer.mid_delete")
    queue.delete_many(change.job_ids[half:])
    if change.failed:
        log.error(
            "items_failed",
            items=len(change.failed),
            first=str(change.failed[0].item)[:80],
            error=change.failed[0].error[:200],
            hint="see `beanmill buried`; fix the cause, then `beanmill requeue`",
        )
