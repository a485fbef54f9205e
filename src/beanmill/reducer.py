"""The reducer role: fold partials into the total, commit total + ledger, then delete results.

Commit-then-delete is the order that makes a crash harmless: results applied but not yet
deleted come back, and the ledger (committed with the total) says they are already in it.
The fold itself (dedup, layout, retries, failed items) is `fold.py`; when to commit is
`commit_policy.py`; progress lines are `reducer_progress.py`, end conditions and the
`finished` record `reducer_end.py`, retry puts `reducer_retries.py`; this module is the loop
that talks to beanstalkd.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import greenstalk
import structlog

from beanmill import exitcodes, reducer_commit
from beanmill.beanstalk.connection import Queue
from beanmill.beanstalk.lease import hold
from beanmill.checkpoint import Checkpoint
from beanmill.commit_policy import Staging, commit_due, next_reserve
from beanmill.crashpoint import crashpoint
from beanmill.driver import drive
from beanmill.ending import EndConditions, StopRule
from beanmill.errors import BadSignature, QueueLost
from beanmill.fold import Fold
from beanmill.jobspec import Spec
from beanmill.notify import Notifier
from beanmill.rebuild import accept_rollback, rebuild_due, request_rebuild
from beanmill.reducer_end import announce_finished, early_stop, estimator, exit_code, state
from beanmill.reducer_progress import ProgressReporter
from beanmill.reducer_retries import put_retries
from beanmill.signing import Signer, verify
from beanmill.source import population_size
from beanmill.web import HttpAddress, serve_reducer

log = structlog.get_logger()

RESERVE_AT_ONCE = 200


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
    #: Accept a checkpoint that went back in time, and have its missing batches put again.
    rebuild: bool = False


class Reducer:
    """The reducer role's state and steps; its collaborators are named in the module doc."""

    def __init__(
        self,
        spec: Spec,
        address: str,
        checkpoint: Path,
        opts: ReducerOptions,
        stop: threading.Event,
        out: TextIO,
    ) -> None:
        self.spec, self.opts, self.stop = spec, opts, stop
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
        self.estimator = estimator(spec, self.population)
        self.stop_rule = StopRule(opts.ending)
        self.reporter = ProgressReporter(
            spec,
            out,
            self.notifier,
            every_s=opts.progress_interval,
            progress_file=opts.progress_file,
            population=self.population,
            start=self.snap,
            stop_rule=self.stop_rule,
        )
        self.last_commit = time.monotonic()
        self.caught_up, self.looks = False, 0
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
        estimator = self.estimator if self.snap.batches or change.applied else None
        reducer_commit.write(self.ckpt, change, estimator, stopped_because)
        self.snap = self.ckpt.snapshot()
        self.fold.reset(self.snap)
        self.last_commit = time.monotonic()
        reducer_commit.settle(self.queue, change)
        self.put_retries()

    def put_retries(self) -> None:
        """Put the retry batches committed but not yet on the queue (reducer_retries.py)."""
        identity, signer = self.snap.identity, self.opts.signer
        if put_retries(self.queue, self.ckpt, self.items_tube, identity, signer):
            self.snap = self.ckpt.snapshot()  # fewer retries pending: maybe complete now
            self.fold.reset(self.snap)

    def _due(self) -> bool:
        fold = self.fold
        staging = Staging(fold.job_count, fold.items, fold.batch_count, fold.end_staged)
        since = time.monotonic() - self.last_commit
        return commit_due(staging, self.snap, since, self.opts.commit_interval, self.caught_up)

    # -- the role's steps (driver.py runs them) ---------------------------------------------

    def start(self) -> int | None:
        if self.snap.complete:
            self.reporter.print(self.snap, "already " + state(self.snap))
            announce_finished(self.queue, self.spec, self.snap, self.opts.signer, self.ckpt.path)
            return exit_code(self.snap)
        log.info("reducer_started", items=self.snap.items, batches=self.snap.batches)
        return None

    def step(self, now: float) -> int | None:
        if self.retries_due:  # at start and after a reconnect, as is a rebuild's request
            if rebuild_due(self.ckpt.path):  # first: it has the retries put again
                request_rebuild(self.queue, self.spec, self.ckpt, self.opts.signer)
            self.put_retries()
            self.retries_due = False
        return exit_code(self.snap) if self._step() else None

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
        self.reporter.print(self.snap, state(self.snap))
        if self.snap.complete:
            announce_finished(self.queue, self.spec, self.snap, self.opts.signer, self.ckpt.path)
        log.info("reducer_stopped", items=self.snap.items, complete=self.snap.complete)
        return exit_code(self.snap) if self.snap.complete else exitcodes.OK

    def _step(self) -> bool:
        """Commit if due, show progress, stage what comes; True when the job is finished.
        Every queue failure in here is a QueueLost, which the loop answers by reconnecting."""
        if self._due():
            self.commit()
            progress = self.reporter.progress(self.snap)
            reason = early_stop(self.spec, self.stop_rule, self.snap, progress)
            if reason is not None:
                self.commit(stopped_because=reason)
                log.info("job_stopped_early", reason=reason)
            if self.snap.complete and self.opts.exit_when_complete:
                return True
        if self.reporter.due():
            self.reporter.print(self.snap)
        fold, everyone = self.fold, self.population
        left = None if everyone is None else everyone - self.snap.items - fold.items
        wait, timeout, most = next_reserve(
            (fold.job_count, fold.items), left, self.caught_up, self.looks, self.last_commit,
            self.opts.commit_interval, time.monotonic(), RESERVE_AT_ONCE,
        )  # fmt: skip
        self.stop.wait(wait)  # 0: returns at once
        jobs = self.queue.reserve_many(timeout=timeout, most=most)
        self.looks = self.looks + 1 if timeout == 0 else 0
        self.caught_up = len(jobs) < most  # a full take: more may be waiting
        for job in jobs:
            crashpoint("reducer.after_reserve")
            self._stage(job)
        return False

    def close(self) -> None:
        self.queue.close()
        self.ckpt.close()
        self.lease.release()


def run_reducer(
    spec: Spec,
    address: str,
    checkpoint: Path,
    opts: ReducerOptions,
    stop: threading.Event,
    out: TextIO = sys.stdout,
) -> int:
    if opts.rebuild:
        accept_rollback(checkpoint)
    reducer = Reducer(spec, address, checkpoint, opts, stop, out)
    server = serve_reducer(reducer, opts.http) if opts.http else None
    try:
        return drive(reducer, stop)
    finally:
        if server is not None:
            server.close(linger=reducer.snap.complete and not stop.is_set())
