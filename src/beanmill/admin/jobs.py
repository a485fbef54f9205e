"""The operator commands' logic: stats, buried jobs with their stored errors, requeue, delete,
rates.

Everything here talks to beanstalkd or reads the checkpoint and returns typed data; the
printing is in admin_cli.

Listing buried jobs: beanstalkd has no command for it. `peek-buried` shows only the oldest
buried job, kicking to look would change the very state we report, and probing every job id
with `stats-job` costs a round trip per job ever put. So `buried` starts from the errors the
reducer stored: each names the job id its batch had when it was buried. That job is kept only
if `stats-job` says it is still buried in this job's items tube and its body is the same batch
(job ids are reused after a beanstalkd restart, so a stored id may now be another body). Then
the oldest buried job from `peek-buried` is added if no stored error names it (the reducer has
not seen its error yet, or the job was buried by hand). The buried count from `stats-tube`
says how many there are in all, so the operator sees how many could not be described.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import greenstalk

from beanmill.admin.base import ServerStats, TubeStats, session, tube_stats, tubes_of
from beanmill.admin.reset import ResetResult, job_tubes, reset
from beanmill.admin.stats import Stats, TubeRates, Tubes, rates, stats
from beanmill.checkpoint import (
    Snapshot,
    forget_errors,
    read_errors,
    read_failed,
    read_snapshot,
    requeue_failed,
)
from beanmill.errors import BeanmillError, CheckpointError, MalformedMessage
from beanmill.ids import malformed_batch_id
from beanmill.jsontypes import Item
from beanmill.outcomes import FailedItem, Retry
from beanmill.wire import Partial, Partials, decode_batch, decode_result

MALFORMED = "(malformed)"
NOT_BURIED = {
    "ready": "it waits for a consumer already",
    "reserved": "a consumer has it now",
    "delayed": "it waits out a retry delay, then runs",
}
NO_STORED_ERROR = "no stored error: the reducer has not seen one yet, or the body was put by hand"


@dataclass(frozen=True)
class BuriedJob:
    """One buried job, described by the error the reducer stored for its batch if any; or
    one item that failed its last attempt (`job_id` None: the checkpoint keeps it, not a job)."""

    job_id: int | None
    batch: str  # MALFORMED when the body is not a usable batch
    attempts: int | None  # None: no stored error says
    reason: str  # "failed", "malformed", or "unknown" (no stored error)
    exception: str
    host: str
    traceback: str
    item: Item | None = None


@dataclass(frozen=True)
class BuriedReport:
    tube: str
    buried: int  # all buried jobs in the items tube, described or not
    jobs: tuple[BuriedJob, ...]  # by job id, at most `limit`
    described: int  # how many could be described, before the limit
    stale_errors: int  # stored errors whose job is no longer buried (requeued, or gone)
    results_buried: int  # malformed results the reducer buried on the results tube
    checkpoint: bool  # False: only peek-buried was available
    failed_items: tuple[BuriedJob, ...] = ()  # items that failed their last attempt


@dataclass(frozen=True)
class DeleteResult:
    deleted: tuple[int, ...]
    forgotten: int  # stored errors dropped from the checkpoint
    problems: tuple[str, ...]  # one line per job id that was not deleted


@dataclass(frozen=True)
class RequeueResult:
    tube: str
    kicked: int
    problems: tuple[str, ...]  # one line per job id that was not kicked


def checkpoint_of(path: Path, job: str) -> Snapshot:
    """The checkpoint's snapshot, refused when it belongs to another job."""
    snap = read_snapshot(path)
    if snap.job != job:
        raise CheckpointError(
            f"checkpoint {path} belongs to job {snap.job!r}, not {job!r}: pass this job's "
            "checkpoint, or the matching --job"
        )
    return snap


def _batch_of(body: bytes) -> str:
    try:
        return decode_batch(body).batch
    except MalformedMessage:
        return MALFORMED


def _stored(record: dict[str, object], batch: str, job_id: int) -> BuriedJob:
    attempts = record.get("attempts")
    return BuriedJob(
        job_id=job_id,
        batch=MALFORMED if record.get("reason") == "malformed" else batch,
        attempts=attempts if isinstance(attempts, int) else None,
        reason=str(record.get("reason") or "unknown"),
        exception=str(record.get("exception", "")),
        host=str(record.get("host", "")),
        traceback=str(record.get("traceback", "")),
    )


def _still_buried(
    client: greenstalk.Client[bytes], job_id: int, tube: str, batch: str, malformed: bool
) -> bool:
    """Is this stored job id still the same buried batch in our items tube?"""
    try:
        st = client.stats_job(job_id)
        if st["state"] != "buried" or st["tube"] != tube:
            return False
        body = client.peek(job_id).body
    except greenstalk.NotFoundError:
        return False
    found = _batch_of(body)
    # A malformed body has no batch id of its own to compare; it must still be malformed.
    return found == MALFORMED if malformed else found == batch


def buried(
    address: str, job: str, checkpoint: Path | None, limit: int | None = None
) -> BuriedReport:
    """Buried jobs of the items tube with their stored errors (see the module docstring)."""
    items, results = tubes_of(job)
    records: dict[str, dict[str, object]] = {}
    if checkpoint is not None:
        checkpoint_of(checkpoint, job)
        records = read_errors(checkpoint)
    found: dict[int, BuriedJob] = {}
    stale = 0
    with session(address, use=items) as client:
        count = tube_stats(client, items)["buried"]
        results_buried = tube_stats(client, results)["buried"]
        for batch, record in records.items():
            job_id = record.get("job_id")
            malformed = record.get("reason") == "malformed"
            if isinstance(job_id, int) and _still_buried(client, job_id, items, batch, malformed):
                found[job_id] = _stored(record, batch, job_id)
            else:
                stale += 1
        try:
            oldest = client.peek_buried()
        except greenstalk.NotFoundError:
            oldest = None
    if oldest is not None and oldest.id not in found:
        found[oldest.id] = BuriedJob(
            oldest.id, _batch_of(oldest.body), None, "unknown", NO_STORED_ERROR, "", ""
        )
    jobs = sorted(found.values(), key=lambda j: j.job_id or 0)
    failed = tuple(_failed_item(f) for f in read_failed(checkpoint)) if checkpoint else ()
    return BuriedReport(
        tube=items,
        buried=count,
        jobs=tuple(jobs[:limit] if limit is not None else jobs),
        described=len(jobs),
        stale_errors=stale,
        results_buried=results_buried,
        checkpoint=checkpoint is not None,
        failed_items=failed,
    )


def _failed_item(f: FailedItem) -> BuriedJob:
    return BuriedJob(
        job_id=None,
        batch=f.batch,
        attempts=f.attempts,
        reason="failed",
        exception=f.error,
        host=f.host,
        traceback=f.traceback,
        item=f.item,
    )


def requeue_failed_items(checkpoint: Path, job: str) -> list[Retry]:
    """Schedule the checkpoint's failed items again (the reducer puts them)."""
    checkpoint_of(checkpoint, job)
    return requeue_failed(checkpoint)


def _gone(job_id: int) -> str:
    return (
        f"job {job_id} does not exist on this beanstalkd (done and deleted, or a wrong id): "
        "see `beanmill buried` for the buried ones"
    )


def _not_buried_here(
    client: greenstalk.Client[bytes], job_id: int, tube: str, refusal: str = ""
) -> str | None:
    """Why job_id is not a buried job of `tube`, as one line ending in `refusal`; None when
    it is one."""
    try:
        st = client.stats_job(job_id)
    except greenstalk.NotFoundError:
        return _gone(job_id)
    if st["tube"] != tube:
        return f"job {job_id} is in tube {st['tube']}, not {tube}: check the id and --job"
    if st["state"] != "buried":
        why = NOT_BURIED.get(st["state"], "only buried jobs qualify")
        return f"job {job_id} is {st['state']}, not buried: {why}{refusal}"
    return None


def _kick_one(client: greenstalk.Client[bytes], job_id: int, tube: str) -> str | None:
    """Kick one buried job of `tube`; None when done, else why not, as one line."""
    problem = _not_buried_here(client, job_id, tube)
    if problem is not None:
        return problem
    try:
        client.kick_job(job_id)
    except greenstalk.NotFoundError:
        return _gone(job_id)
    return None


def tube_of(job: str, kind: str) -> str:
    """`items`, `results` or `control`: the admin commands reach every tube of a job."""
    if kind not in TUBE_KINDS:
        raise BeanmillError(f"no tube {kind!r}: one of {', '.join(TUBE_KINDS)}")
    items, results = tubes_of(job)
    return {"items": items, "results": results, "control": f"{job}.control"}[kind]


TUBE_KINDS = ("items", "results", "control")


def requeue(
    address: str,
    job: str,
    job_ids: tuple[int, ...] = (),
    max_jobs: int | None = None,
    kind: str = "items",
) -> RequeueResult:
    """Kick these buried jobs, or else up to `max_jobs` (default all) of the items tube (or
    the results or control tube: a result buried for a rereduce() since fixed, say).

    The bulk kick is bounded by the buried count just read and skipped at 0, because `kick`
    moves delayed jobs (retries waiting out their delay) when a tube has no buried ones.
    """
    items = tube_of(job, kind)
    problems: list[str] = []
    kicked = 0
    with session(address, use=items) as client:
        if job_ids:
            for job_id in dict.fromkeys(job_ids):
                problem = _kick_one(client, job_id, items)
                if problem is None:
                    kicked += 1
                else:
                    problems.append(problem)
        else:
            count = tube_stats(client, items)["buried"]
            bound = count if max_jobs is None else min(max_jobs, count)
            kicked = client.kick(bound) if bound > 0 else 0
    return RequeueResult(tube=items, kicked=kicked, problems=tuple(problems))


def _error_key(body: bytes, kind: str = "items") -> tuple[str, bool]:
    """The key the reducer stores a buried body's error under, and whether it holds nothing
    to count (malformed, or a record that carries no items)."""
    if kind == "control":
        return malformed_batch_id(body), True
    if kind == "results":
        try:
            record = decode_result(body)
        except MalformedMessage:
            return malformed_batch_id(body), True
        counts = isinstance(record, Partial | Partials)
        return malformed_batch_id(body), not counts
    try:
        return decode_batch(body).batch, False
    except MalformedMessage:
        return malformed_batch_id(body), True


def delete(
    address: str,
    job: str,
    job_ids: tuple[int, ...],
    checkpoint: Path | None = None,
    lose_items: bool = False,
    kind: str = "items",
) -> DeleteResult:
    """Delete buried jobs of this job's items (or results, or control) tube for good; drop
    their stored errors.

    Only buried jobs: a ready, reserved or delayed one is work under way. A body that is a
    usable batch (or a partial) holds items the total would then never count, so it needs
    `lose_items`; a malformed one holds nothing beanmill can count."""
    items = tube_of(job, kind)
    if checkpoint is not None:
        checkpoint_of(checkpoint, job)
    deleted: list[int] = []
    keys: list[str] = []
    problems: list[str] = []
    with session(address) as client:
        for job_id in dict.fromkeys(job_ids):
            problem = _not_buried_here(client, job_id, items, "; only buried jobs are deleted")
            if problem is not None:
                problems.append(problem)
                continue
            try:
                key, malformed = _error_key(client.peek(job_id).body, kind)
                if not malformed and not lose_items:
                    what = f"batch {key}" if kind == "items" else "a partial"
                    problems.append(
                        f"job {job_id} is {what}, which the total would never count: "
                        "requeue it once its cause is fixed, or pass --lose-items"
                    )
                    continue
                client.delete(job_id)
            except greenstalk.NotFoundError:
                problems.append(_gone(job_id))
                continue
            deleted.append(job_id)
            keys.append(key)
    forgotten = forget_errors(checkpoint, keys) if checkpoint is not None and keys else 0
    return DeleteResult(deleted=tuple(deleted), forgotten=forgotten, problems=tuple(problems))


__all__ = [
    "BuriedJob",
    "BuriedReport",
    "DeleteResult",
    "RequeueResult",
    "ResetResult",
    "ServerStats",
    "Stats",
    "TubeRates",
    "TubeStats",
    "Tubes",
    "buried",
    "checkpoint_of",
    "delete",
    "job_tubes",
    "rates",
    "requeue",
    "requeue_failed_items",
    "reset",
    "stats",
    "tube_of",
    "tubes_of",
]
