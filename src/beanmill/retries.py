"""What a consumer reports of a batch whose items failed: pure functions, tested in-process.

Failed items travel in the batch's partial, grouped by error, with the attempt they had and
whether it was their last; the reducer turns them into the batch's retry or into failed
items (fold.py). A partial too big for a job, and bodies that cannot be used at all, become
error records here, for the consumer to bury with.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import cast

import structlog

from beanmill.ids import malformed_batch_id
from beanmill.jsontypes import JSON, Item
from beanmill.mapping import Failed, Outcome, all_good, summary
from beanmill.wire import Batch, ErrorRecord, Failure, Partial, dumps

log = structlog.get_logger()

RETRY_DELAY_MAX_S = 3600


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 3
    retry_delay: int = 1

    def delay(self, attempt: int) -> int:
        """Seconds before the retry of an attempt's failed items: doubling, capped."""
        return int(min(self.retry_delay * 2**attempt, RETRY_DELAY_MAX_S))

    def final(self, attempt: int) -> bool:
        return attempt + 1 >= self.max_attempts


def partial_of(
    batch: Batch,
    outcomes: Sequence[Outcome],
    reduce: Callable[[Sequence[JSON]], JSON],
    policy: RetryPolicy,
    host: str,
) -> Partial:
    """The batch's partial over its good items, with its failed items grouped by error.

    A reduce() that raises, or returns what JSON cannot carry, fails every item of the batch:
    it is the user's code, and its error is the one shown."""
    failures: dict[str, tuple[Failed, list[Item]]] = {}
    if all_good(outcomes):  # the common case, without a Python loop over the items
        good = cast("Sequence[JSON]", outcomes)
    else:
        good = [o for o in outcomes if not isinstance(o, Failed)]
        for item, outcome in zip(batch.items, outcomes, strict=True):
            if isinstance(outcome, Failed):
                failures.setdefault(outcome.error, (outcome, []))[1].append(item)
    value: JSON = None
    if good:
        try:
            value = reduce(good)
            dumps(value)  # NaN, a set: the reducer could not take it either
        except Exception as exc:
            why = Failed.of(exc)
            failures = {why.error: (why, list(batch.items))}
            good, value = [], None
    return Partial(
        batches=(batch.batch,),
        items=len(good),
        value=value,
        failed=tuple(Failure(f.error, f.traceback, tuple(i)) for f, i in failures.values()),
        attempt=batch.attempt,
        retry_delay=policy.delay(batch.attempt),
        final=policy.final(batch.attempt),
        host=host,
        job=batch.job,
    )


def oversize_error(partial: Partial) -> str:
    if partial.items == 0 and partial.failed:
        return partial.failed[0].error
    return (
        "the partial is over beanstalkd's max job size: make reduce() return something "
        f"smaller (a top-k instead of every value); {partial.failed_items} items failed too"
    )


def without_value(partial: Partial, batch: Batch) -> Partial:
    """A partial over beanstalkd's -z, as its batch failed for good (no traceback): what the
    consumer puts when the partial itself does not fit."""
    failure = Failure(oversize_error(partial), "", batch.items)
    return replace(partial, items=0, value=None, failed=(failure,), final=True)


def failed_record(job_id: int, batch: Batch, exc: Exception, host: str) -> ErrorRecord:
    return ErrorRecord(
        batch=batch.batch,
        job_id=job_id,
        attempts=batch.attempt + 1,
        reason="failed",
        exception=f"{type(exc).__name__}: {exc}",
        traceback=summary(exc),
        host=host,
    )


def malformed_record(job_id: int, body: bytes, reason: str, host: str) -> ErrorRecord:
    """Unusable bodies are kept (buried) for an operator, keyed by a digest of the body."""
    return ErrorRecord(
        batch=malformed_batch_id(body),
        job_id=job_id,
        attempts=1,
        reason="malformed",
        exception=reason,
        traceback="",
        host=host,
    )


def shortened(record: ErrorRecord) -> ErrorRecord:
    """An error record that fits even a small -z."""
    return replace(record, exception=record.exception[:200], traceback="")


def log_failures(partial: Partial) -> None:
    if not partial.failed:
        return
    bound = log.bind(
        batch=partial.batches[0],
        attempt=partial.attempt + 1,
        items=partial.failed_items,
        item=str(partial.failed[0].items[0])[:80],
        error=partial.failed[0].error[:300],
    )
    if partial.final:
        bound.error("items_failed", hint="fix the cause, then `beanmill requeue`")
    else:
        bound.warning("items_failed_retrying", delay_s=partial.retry_delay)
