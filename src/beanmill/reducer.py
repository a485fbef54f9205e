"""The reducer role: fold partials into the total, commit total + ledger, then delete results.

Commit-then-delete is the order that makes a crash harmless: results applied but not yet
deleted come back, and the ledger (committed with the total) says they are already in it.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TextIO

import greenstalk
import structlog

from beanmill.checkpoint import Checkpoint, Snapshot
from beanmill.crashpoint import crashpoint
from beanmill.ending import EndConditions, Estimator, half_width, stop_reason
from beanmill.errors import MalformedMessage
from beanmill.jobspec import Progress, Spec
from beanmill.jsontypes import JSON
from beanmill.notify import Notifier
from beanmill.progress import progress_line
from beanmill.queue import CONNECTION_ERRORS, Queue
from beanmill.source import layout_of, population_size
from beanmill.wire import (
    EndRecord,
    ErrorRecord,
    FinishedRecord,
    Partial,
    Partials,
    decode_result,
    encode_finished,
)

log = structlog.get_logger()

MAX_STAGED_JOBS = 5000
RESERVE_AT_ONCE = 200
EARLY_COMMIT_ITEMS = 1000
#: Caught up (the results tube ran dry) with work staged, the reducer commits after this
#: share of --commit-interval instead of all of it: status and the job's end come promptly,
#: while a trickle of results still costs at most 1/(share x interval) commits per second.
CAUGHT_UP_SHARE = 0.05


@dataclass(frozen=True)
class ReducerOptions:
    commit_interval: float = 2.0
    progress_interval: float = 5.0
    exit_when_complete: bool = True
    ending: EndConditions = field(default_factory=EndConditions)
    progress_file: Path | None = None
    connect_retry: float = 0.0


@dataclass
class Staged:
    """Work reserved since the last commit: lost (and handed out again) if we die."""

    job_ids: list[int] = field(default_factory=list)
    partials: list[JSON] = field(default_factory=list)
    applied: dict[str, int] = field(default_factory=dict)
    errors: dict[str, ErrorRecord] = field(default_factory=dict)
    items: int = 0
    end: EndRecord | None = None
    layout: str | None = None


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
        self.results_tube = spec.tubes[1]
        self.queue = Queue(
            address, use=self.results_tube, watch=self.results_tube, retry_s=opts.connect_retry
        )
        self.ckpt = Checkpoint(checkpoint, spec.name)
        self.snap = self.ckpt.snapshot()
        self.staged = Staged()
        self.population = population_size(spec.items())
        self.estimator = _estimator(spec, self.population)
        self.last_half: float | None = None
        self.notifier = Notifier()
        self.started = time.monotonic()
        self.items_at_start = self.snap.items
        self.last_commit = self.last_progress = time.monotonic()
        self.caught_up = False

    # -- folding ---------------------------------------------------------------------------

    def _stage(self, job: greenstalk.Job[bytes]) -> None:
        try:
            record = decode_result(job.body)
            if isinstance(record, Partial):
                self._stage_partials((record,))
            elif isinstance(record, Partials):
                self._stage_partials(record.entries)
            elif isinstance(record, ErrorRecord):
                if not self.ckpt.applied([record.batch]) and record.batch not in (
                    self.staged.applied
                ):
                    self.staged.errors[record.batch] = record
            elif isinstance(record, EndRecord):
                self.staged.end = record
        except MalformedMessage as exc:
            self.queue.bury(job)
            log.error("result_malformed_buried", job_id=job.id, reason=str(exc))
            return
        self.staged.job_ids.append(job.id)

    def _check_layout(self, batch_ids: list[str]) -> None:
        layouts = {lay for b in batch_ids if (lay := layout_of(b)) is not None}
        known = self.staged.layout or self.snap.layout
        if layouts and (len(layouts) > 1 or (known is not None and layouts != {known})):
            raise MalformedMessage(
                f"batch layout {sorted(layouts)} differs from this checkpoint's {known!r}: the "
                "producer was restarted with another --batch-size/--order/--seed"
            )

    def _new_entries(self, partials: tuple[Partial, ...]) -> list[Partial]:
        """The entries not applied yet; raises, before anything is staged, for a result that
        must not be applied at all. One ledger lookup for the whole result job."""
        every = [b for p in partials for b in p.batches]
        self._check_layout(every)
        seen = self.ckpt.applied(every) | (set(every) & self.staged.applied.keys())
        new = []
        for partial in partials:
            batches = set(partial.batches)
            overlap = batches & seen
            if overlap and overlap != batches:
                # A partial is applied whole or not at all; half of one cannot be taken apart.
                raise MalformedMessage(
                    f"partial overlaps the ledger: {len(overlap)} of its {len(batches)} "
                    f"batches are in already, {sorted(batches - overlap)[:5]} are not"
                )
            if overlap:
                log.debug("duplicate_skipped", batches=len(batches))
            else:
                new.append(partial)
                seen |= batches  # a later entry of the same result may name them again
        return new

    def _stage_partials(self, partials: tuple[Partial, ...]) -> None:
        """A result job is applied whole: every entry is checked before any is staged."""
        for partial in self._new_entries(partials):
            if self.staged.layout is None and self.snap.layout is None:
                self.staged.layout = next(
                    (lay for b in partial.batches if (lay := layout_of(b)) is not None), None
                )
            per_batch = partial.items // len(partial.batches)
            for b in partial.batches:
                self.staged.applied[b] = per_batch
                self.staged.errors.pop(b, None)
            self.staged.partials.append(partial.value)
            self.staged.items += partial.items

    def _total(self) -> JSON:
        if not self.staged.partials:
            return self.snap.total
        if self.snap.batches == 0:
            return self.spec.rereduce(self.staged.partials)
        return self.spec.rereduce([self.snap.total, *self.staged.partials])

    def commit(self, stopped_because: str | None = None) -> None:
        staged = self.staged
        if not staged.job_ids and stopped_because is None:
            return
        total = self._total()
        estimate = None
        if self.estimator is not None and (self.snap.batches or staged.applied):
            estimate = self.estimator.estimate(total)
        self.ckpt.commit(
            total=total,
            estimate=estimate,
            items=self.snap.items + staged.items,
            applied=list(staged.applied.items()),
            errors=list(staged.errors.values()),
            end=staged.end,
            layout=staged.layout,
            stopped_because=stopped_because,
        )
        crashpoint("reducer.after_commit")
        self.snap = self.ckpt.snapshot()
        self.staged = Staged()
        self.last_commit = time.monotonic()
        log.debug("checkpoint_committed", batches=len(staged.applied), jobs=len(staged.job_ids))
        half = len(staged.job_ids) // 2
        self.queue.delete_many(staged.job_ids[:half])
        crashpoint("reducer.mid_delete")
        self.queue.delete_many(staged.job_ids[half:])

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
            with self.opts.progress_file.open("a") as fh:
                fh.write(json.dumps(record) + "\n")
        self.last_progress = time.monotonic()

    def _due(self) -> bool:
        staged = self.staged
        if not staged.job_ids:
            return False
        if len(staged.job_ids) >= MAX_STAGED_JOBS or staged.end is not None:
            return True
        if staged.items >= max(EARLY_COMMIT_ITEMS, self.snap.items):
            return True  # doubling: early estimates (and their plot) come at log-spaced sizes
        if self.snap.end_batches is not None and (
            self.snap.producer_batches + len(staged.applied) >= self.snap.end_batches
        ):
            return True
        return time.monotonic() - self.last_commit >= self._interval()

    def _interval(self) -> float:
        share = CAUGHT_UP_SHARE if self.caught_up else 1.0
        return share * self.opts.commit_interval

    def _stop_reason(self) -> str | None:
        """An end condition that holds now, for a job that is not finished already."""
        if self.snap.complete:
            return None
        reason = stop_reason(self.opts.ending, self.snap.items, self.snap.estimate)
        if reason is None and self.spec.done(self.snap.total, self.progress()):
            reason = "done() returned true"
        return reason

    def run(self) -> int:
        self.notifier.ready()  # also for a finished job: exiting 0 unready fails Type=notify
        if self.snap.complete:
            self.print_progress("already " + _state(self.snap))
            self._announce_finished()
            return 0
        log.info("reducer_started", items=self.snap.items, batches=self.snap.batches)
        while not self.stop.is_set():
            self.notifier.watchdog()
            if self._due():
                self.commit()
                reason = self._stop_reason()
                if reason is not None:
                    self.commit(stopped_because=reason)
                    log.info("job_stopped_early", reason=reason)
                if self.snap.complete and self.opts.exit_when_complete:
                    break
            if time.monotonic() - self.last_progress >= self.opts.progress_interval:
                self.print_progress()
            timeout = 1
            if self.staged.job_ids and self.caught_up:
                # Wait out the short caught-up interval, then commit unless more came.
                self.stop.wait(max(0.0, self.last_commit + self._interval() - time.monotonic()))
                timeout = 0
            try:
                jobs = self.queue.reserve_many(timeout=timeout, most=RESERVE_AT_ONCE)
                self.caught_up = len(jobs) < RESERVE_AT_ONCE
                for job in jobs:
                    crashpoint("reducer.after_reserve")
                    self._stage(job)
            except CONNECTION_ERRORS:
                # Uncommitted work is dropped: its results come back to a new connection.
                self.staged = Staged()
                if not self.queue.reconnect(self.stop, self.notifier.watchdog):
                    break
        if self.stop.is_set():
            self.notifier.stopping()
            self.commit()
        self.print_progress(_state(self.snap))
        if self.snap.complete:
            self._announce_finished()
        log.info("reducer_stopped", items=self.snap.items, complete=self.snap.complete)
        return 0

    def _announce_finished(self) -> None:
        """Tell producers and consumers on every host, through the control tube, and remove
        the item jobs an early stop left behind. Idempotent: repeated at every start."""
        reason = self.snap.stopped_because or "every batch applied"
        try:
            if not self.queue.has_ready(self.spec.control_tube):
                body = encode_finished(FinishedRecord(reason, self.snap.items))
                self.queue.put(self.spec.control_tube, body, ttr=60)
            if self.snap.stopped_because is not None:
                drained = self.queue.drain(self.spec.tubes[0])
                log.info("items_drained", jobs=drained, reason=reason)
        except CONNECTION_ERRORS:
            log.warning("finished_not_announced", hint="the next reducer start announces it")

    def close(self) -> None:
        self.queue.close()
        self.ckpt.close()


def _state(snap: Snapshot) -> str:
    if snap.stopped_because is not None:
        return f"stopped early ({snap.stopped_because})"
    return "complete" if snap.complete else "stopped"


def _estimator(spec: Spec, population: int | None) -> Estimator | None:
    """The spec's reducer if it estimates; its population is filled in from len(items())."""
    reducer = spec.reducer
    if not isinstance(reducer, Estimator):
        return None
    if reducer.population is None:
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
    try:
        return reducer.run()
    finally:
        reducer.close()
