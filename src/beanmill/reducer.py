"""The reducer role: fold partials into the total, commit total + ledger, then delete results.

Commit-then-delete is the order that makes a crash harmless: results applied but not yet
deleted come back, and the ledger (committed with the total) says they are already in it.
The fold itself (dedup, layout, retries, failed items) is `fold.py`; when to commit is
`commit_policy.py`; this module is the loop that talks to beanstalkd.
"""

from __future__ import annotations

import contextlib
import json
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TextIO

import greenstalk
import structlog

from beanmill import exitcodes
from beanmill.beanstalk.connection import Queue
from beanmill.beanstalk.lease import hold
from beanmill.checkpoint import Checkpoint, Snapshot
from beanmill.commit_policy import Staging, commit_due, interval
from beanmill.control import finished_record
from beanmill.crashpoint import crashpoint
from beanmill.driver import drive
from beanmill.ending import EndConditions, Estimates, Estimator, half_width, stop_reason
from beanmill.errors import BadSignature, QueueLost
from beanmill.files import open_private_append
from beanmill.fold import Fold
from beanmill.jobspec import Progress, Spec
from beanmill.notify import Notifier
from beanmill.outcomes import Retry
from beanmill.progress import progress_line
from beanmill.signing import Signer, signed, verify
from beanmill.source import population_size
from beanmill.web import HttpAddress, serve_reducer
from beanmill.wire import Batch, FinishedRecord, encode_batch, encode_finished

log = structlog.get_logger()

RESERVE_AT_ONCE = 200
#: A retry put on the items tube gets this TTR when the producer's is unknown.
RETRY_TTR = 60
RETRY_TOO_BIG = (
    "the retry of these items does not fit in one job under beanstalkd's -z (its body is "
    "larger than the item's own): they count as failed; start beanstalkd with a larger -z, "
    "then `beanmill requeue`"
)


@dataclass(frozen=True)
class ReducerOptions:
    commit_interval: float = 2.0
    progress_interval: float = 5.0
    exit_when_complete: bool = True
    ending: EndConditions = field(default_factory=EndConditions)
    progress_file: Path | None = None
    connect_retry: float = 0.0
    signer: Signer | None = None
    http: HttpAddress | None = None


class Reducer:
    def __init__(
        self,
        spec: Spec,
        address: str,
        checkpoint: Path,
        opts: ReducerOptions,
        stop: threading.Event,
        out: TextIO,
    ) -> None:
        self.spec, self.opts, self.stop, self.out = spec, opts, stop, out
        self.items_tube, self.results_tube = spec.tubes
        self.notifier = Notifier()
        self.queue = Queue(
            address,
            use=self.results_tube,
            watch=self.results_tube,
            retry_s=opts.connect_retry,
            stop=stop,
            tick=self.notifier.watchdog,
        )
        # One reducer per job, from any host: a second one would split the results.
        self.lease = hold(address, spec.name, "reducer", self.queue.binlog_waits)
        self.ckpt = Checkpoint(checkpoint, spec.name)
        self.snap = self.ckpt.snapshot()
        self.fold = Fold(self.ckpt, self.snap, spec.rereduce)
        self.population = population_size(spec.items())
        self.estimator = _estimator(spec, self.population)
        self.last_half: float | None = None
        self.started = time.monotonic()
        self.items_at_start = self.snap.items
        self.last_commit = self.last_progress = time.monotonic()
        self.caught_up = False
        #: Retries committed but maybe not put: at start, and after a lost connection.
        self.retries_due = True

    def _stage(self, job: greenstalk.Job[bytes]) -> None:
        try:
            verify(self.opts.signer, job.body)
            reason = self.fold.stage(job.id, job.body)
        except BadSignature as exc:
            reason = str(exc)
        if reason is not None:
            self.queue.bury(job)
            log.error("result_malformed_buried", job_id=job.id, reason=reason)

    def commit(self, stopped_because: str | None = None) -> None:
        if not self.fold.job_count and stopped_because is None:
            return
        self.lease.keep()  # never commit without it: another reducer may have taken over
        change = self.fold.build()
        estimate = None
        if self.estimator is not None and (self.snap.batches or change.applied):
            estimate = self.estimator.estimate(change.total)
        self.ckpt.commit(
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
        self.snap = self.ckpt.snapshot()
        self.fold.reset(self.snap)
        self.last_commit = time.monotonic()
        log.debug("checkpoint_committed", batches=len(change.applied), jobs=len(change.job_ids))
        for bury in change.buried:
            self._bury_id(bury.job_id)
            log.error("result_unfoldable_buried", job_id=bury.job_id, reason=bury.reason)
        half = len(change.job_ids) // 2
        self.queue.delete_many(change.job_ids[:half])
        crashpoint("reducer.mid_delete")
        self.queue.delete_many(change.job_ids[half:])
        if change.failed:
            log.error(
                "items_failed",
                items=len(change.failed),
                first=str(change.failed[0].item)[:80],
                error=change.failed[0].error[:200],
                hint="see `beanmill buried`; fix the cause, then `beanmill requeue`",
            )
        self.put_retries()

    def _bury_id(self, job_id: int) -> None:
        # Its reservation may have ended (TTR, restart): then it comes back, judged again.
        with contextlib.suppress(greenstalk.NotFoundError):
            self.queue.bury(greenstalk.Job(job_id, b""))

    def put_retries(self) -> None:
        """Put the retry batches committed but not yet on the queue, then note them as put.

        Dying in between puts them twice at the next start: their IDs are fixed, so the
        second copy is a duplicate, which the ledger absorbs."""
        retries = self.ckpt.unput_retries()
        if not retries:
            return
        too_big = [r for r in retries if not self._put_retry(r)]
        crashpoint("reducer.after_retry_put")
        self.ckpt.mark_put([r.batch for r in retries if r not in too_big])
        if too_big:
            self.ckpt.fail_retries(too_big, RETRY_TOO_BIG, self.queue.address)
            self.snap = self.ckpt.snapshot()  # fewer retries pending: maybe complete now
            self.fold.reset(self.snap)
        log.info(
            "retries_scheduled", batches=len(retries), items=sum(len(r.items) for r in retries)
        )

    def _put_retry(self, retry: Retry) -> bool:
        retried = Batch(retry.batch, retry.items, attempt=retry.attempt, job=self.snap.identity)
        body = signed(self.opts.signer, encode_batch(retried))
        try:
            self.queue.put(self.items_tube, body, delay=retry.delay, ttr=RETRY_TTR)
        except greenstalk.JobTooBigError:
            log.error("retry_too_big", batch=retry.batch, bytes=len(body), hint=RETRY_TOO_BIG)
            return False
        return True

    # -- the loop ----------------------------------------------------------------------------

    def progress(self) -> Progress:
        elapsed = time.monotonic() - self.started
        done = self.snap.items - self.items_at_start
        return Progress(
            items=self.snap.items,
            batches=self.snap.batches,
            total_items=self.snap.end_items or self.population,
            total_batches=self.snap.end_batches,
            errors=self.snap.errors,
            elapsed=elapsed,
            items_per_s=done / elapsed if elapsed > 0 else 0.0,
        )

    def print_progress(self, state: str = "") -> None:
        """A line on stdout for people (and journald), and a JSON line for programs."""
        p = self.progress()
        report = self.spec.report(self.snap.total, p)
        half = half_width(self.snap.estimate) if self.snap.estimate else None
        if half is not None and self.last_half is not None and self.last_half > 0:
            report += f" (interval x{half / self.last_half:.2f} since last line)"
        self.last_half = half if half is not None else self.last_half
        line = progress_line(self.spec.name, p, report, state)
        print(line, file=self.out, flush=True)
        self.notifier.status(line)
        if self.opts.progress_file is not None:
            record = {
                "at": time.time(),
                "state": state or "running",
                **asdict(p),
                "estimate": self.snap.estimate,
                "report": report,
            }
            with open_private_append(self.opts.progress_file) as fh:
                fh.write(json.dumps(record) + "\n")
        self.last_progress = time.monotonic()

    def _due(self) -> bool:
        fold = self.fold
        staging = Staging(fold.job_count, fold.items, fold.batch_count, fold.end_staged)
        since = time.monotonic() - self.last_commit
        return commit_due(staging, self.snap, since, self.opts.commit_interval, self.caught_up)

    def _interval(self) -> float:
        return interval(self.opts.commit_interval, self.caught_up)

    def _stop_reason(self) -> str | None:
        """An end condition that holds now, for a job that is not finished already."""
        if self.snap.complete:
            return None
        reason = stop_reason(self.opts.ending, self.snap.items, self.snap.estimate)
        if reason is None and self.spec.done(self.snap.total, self.progress()):
            reason = "done() returned true"
        return reason

    # -- the role's steps (driver.py runs them) ---------------------------------------------

    def start(self) -> int | None:
        if self.snap.complete:
            self.print_progress("already " + _state(self.snap))
            self._announce_finished()
            return _exit_code(self.snap)
        log.info("reducer_started", items=self.snap.items, batches=self.snap.batches)
        return None

    def step(self, now: float) -> int | None:
        if self.retries_due:
            self.put_retries()
            self.retries_due = False
        return _exit_code(self.snap) if self._step() else None

    def lost(self) -> None:
        """Uncommitted work is dropped: its results come back to a new connection."""
        self.fold.reset(self.snap)
        self.retries_due = True

    def finish(self, stopped: bool) -> int:
        if stopped:
            try:
                self.commit()
            except QueueLost:
                log.warning("final_commit_skipped", hint="its results come back to the next run")
        self.print_progress(_state(self.snap))
        if self.snap.complete:
            self._announce_finished()
        log.info("reducer_stopped", items=self.snap.items, complete=self.snap.complete)
        return _exit_code(self.snap) if self.snap.complete else exitcodes.OK

    def _step(self) -> bool:
        """Commit if due, show progress, stage what comes; True when the job is finished.
        Every queue failure in here is a QueueLost, which the loop answers by reconnecting."""
        if self._due():
            self.commit()
            reason = self._stop_reason()
            if reason is not None:
                self.commit(stopped_because=reason)
                log.info("job_stopped_early", reason=reason)
            if self.snap.complete and self.opts.exit_when_complete:
                return True
        if time.monotonic() - self.last_progress >= self.opts.progress_interval:
            self.print_progress()
        timeout = 1
        if self.fold.job_count and self.caught_up:
            # Wait out the short caught-up interval, then commit unless more came.
            self.stop.wait(max(0.0, self.last_commit + self._interval() - time.monotonic()))
            timeout = 0
        jobs = self.queue.reserve_many(timeout=timeout, most=RESERVE_AT_ONCE)
        self.caught_up = len(jobs) < RESERVE_AT_ONCE
        for job in jobs:
            crashpoint("reducer.after_reserve")
            self._stage(job)
        return False

    def _announce_finished(self) -> None:
        """Tell producers and consumers on every host, through the control tube, and remove
        the item jobs an early stop left behind. Idempotent: repeated at every start."""
        reason = self.snap.stopped_because or "every batch applied"
        try:
            tube = self.spec.control_tube
            if finished_record(self.queue, tube, self.snap.identity, self.opts.signer) is None:
                record = FinishedRecord(reason, self.snap.items, self.snap.identity)
                body = signed(self.opts.signer, encode_finished(record))
                self.queue.put(self.spec.control_tube, body, ttr=60)
            if self.snap.stopped_because is not None:
                drained = self.queue.drain(self.spec.tubes[0])
                log.info("items_drained", jobs=drained, reason=reason)
        except QueueLost:
            log.warning("finished_not_announced", hint="the next reducer start announces it")

    def close(self) -> None:
        self.queue.close()
        self.ckpt.close()
        self.lease.release()


def _state(snap: Snapshot) -> str:
    if snap.stopped_because is not None:
        return f"stopped early ({snap.stopped_because})"
    if snap.complete and snap.failed_items:
        return f"finished with {snap.failed_items:,} failed items"
    return "complete" if snap.complete else "stopped"


def _exit_code(snap: Snapshot) -> int:
    """A finished job's code: failed items make `&& next_step` stop."""
    return exitcodes.FAILED_ITEMS if snap.failed_items else exitcodes.OK


def _estimator(spec: Spec, population: int | None) -> Estimates | None:
    """The spec's reducer if it estimates; its population is filled in from len(items())."""
    reducer = spec.reducer
    if not isinstance(reducer, Estimates):
        return None
    if isinstance(reducer, Estimator) and reducer.population is None:
        reducer.population = population
    return reducer


def run_reducer(
    spec: Spec,
    address: str,
    checkpoint: Path,
    opts: ReducerOptions,
    stop: threading.Event,
    out: TextIO = sys.stdout,
) -> int:
    reducer = Reducer(spec, address, checkpoint, opts, stop, out)
    server = serve_reducer(reducer, opts.http) if opts.http else None
    try:
        return drive(reducer, stop)
    finally:
        if server is not None:
            server.close(linger=reducer.snap.complete and not stop.is_set())
