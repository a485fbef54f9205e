"""The consumer role: reserve a batch, map and reduce it, put the partial, then delete the job.

Put-then-delete is the order that makes a crash harmless: dying between the two leaves the
job to be handed out again and its partial applied twice, which the reducer's ledger absorbs.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import greenstalk
import structlog

from beanmill import exitcodes
from beanmill.beanstalk.binlog_flag import flag_waits
from beanmill.beanstalk.connection import Queue, still_held
from beanmill.control import finished_record
from beanmill.crashpoint import crashpoint
from beanmill.driver import drive
from beanmill.errors import MalformedMessage, UserCodeError
from beanmill.jobspec import Spec
from beanmill.mapping import Mapper
from beanmill.notify import Notifier
from beanmill.pacing import Grouping, ResultsGate, items_of
from beanmill.retries import (
    RetryPolicy,
    failed_record,
    log_failures,
    malformed_record,
    oversize_error,
    partial_of,
    shortened,
    without_value,
)
from beanmill.signals import interruptible
from beanmill.signing import Signer, signed, verify
from beanmill.storm import Storm
from beanmill.usercode import user_frame
from beanmill.web import HttpAddress, serve_consumer
from beanmill.wire import (
    Batch,
    ErrorRecord,
    Partial,
    Partials,
    Result,
    decode_batch,
    encode_result,
    is_bare,
)

if TYPE_CHECKING:
    from beanmill.metrics import ConsumerMetrics

log = structlog.get_logger()

FINISHED_CHECK_S = 5.0
MAX_HUNG_PER_THREAD = 4
#: Most ready partials on the results tube before consumers wait for the reducer: a stopped
#: reducer then bounds beanstalkd's memory and binlog instead of letting them grow.
RESULTS_HIGH_WATER = 5000


@dataclass(frozen=True)
class ConsumerOptions:
    max_attempts: int = 3
    retry_delay: int = 1
    threads: int = 1
    map_timeout: float | None = None
    connect_retry: float = 0.0
    result_ttr: int = 120
    #: Exit when the tube is empty for this long (seconds); None waits for work forever.
    idle_exit: float | None = None
    results_high_water: int = RESULTS_HIGH_WATER
    signer: Signer | None = None
    #: With a signer: still map bare item IDs that carry no tag (a foreign producer's).
    accept_unsigned_ids: bool = False
    http: HttpAddress | None = None


class Consumer:
    def __init__(
        self, spec: Spec, address: str, opts: ConsumerOptions, stop: threading.Event
    ) -> None:
        self.spec, self.opts, self.stop = spec, opts, stop
        self.items_tube, self.results_tube = spec.tubes
        self.notifier = Notifier()
        #: The jobs in hand, kept reserved by `keep_alive` while they are mapped and while a
        #: put of their partial waits for space on beanstalkd's binlog disk.
        self.held: list[greenstalk.Job[bytes]] = []
        self.touch_every: float | None = None
        self.last_touch = 0.0
        self.queue = Queue(
            address,
            use=self.results_tube,
            watch=self.items_tube,
            retry_s=opts.connect_retry,
            stop=stop,
            tick=self.keep_alive,
        )
        self.mapper = Mapper(spec.map, opts.threads, opts.map_timeout, self._thread_setup)
        self.storm, self.grouping = Storm(), Grouping()
        self.gate = ResultsGate(opts.results_high_water)
        self.policy = RetryPolicy(opts.max_attempts, opts.retry_delay)
        #: The identity of the batches taken so far, to know this run's finished record.
        self.identity: str | None = None
        self.host = socket.gethostname()
        self.jobs_done = 0
        self.finished_seen = False
        self.last_finished_check = 0.0
        self.idle_since = 0.0
        #: Why the consumer waits before its next job (storm, results_backlog), for /metrics.
        self.paused: str | None = None
        self.metrics: ConsumerMetrics | None = None

    def _thread_setup(self) -> None:
        """At --threads 1 setup() runs in the one map thread, so what it opens is usable in
        map() (a sqlite3 connection refuses other threads); thread_setup() runs in each."""
        if self.opts.threads == 1:
            self.spec.setup()
        hook = self.spec.thread_setup
        if hook is not None:
            hook()

    def _start_user_code(self) -> None:
        try:
            if self.opts.threads > 1:
                self.spec.setup()
            self.mapper.start()
        except Exception as exc:
            raise UserCodeError(f"setup() of {self.spec.ref} failed: {user_frame(exc)}") from None

    # -- the role's steps (driver.py runs them) ---------------------------------------------

    def start(self) -> int | None:
        self._start_user_code()
        log.info("consumer_started", tube=self.items_tube, threads=self.opts.threads)
        self.idle_since = time.monotonic()
        return None

    def step(self, now: float) -> int | None:
        """Take one job (and the small ones ready with it), map, put, delete."""
        if self.mapper.hung_threads > MAX_HUNG_PER_THREAD * self.opts.threads:
            log.error(
                "maps_hung",
                threads=self.mapper.hung_threads,
                hint="exiting so a restart frees them; give map() its own timeouts",
            )
            return exitcodes.ERROR
        self._wait_for_the_reducer()
        with interruptible():
            job = self.queue.reserve(timeout=1)
        if job is None:
            self._check_finished()
            idle = self.opts.idle_exit
            return exitcodes.OK if idle is not None and now - self.idle_since >= idle else None
        self.handle(job)
        self.paused = "storm"
        self.storm.pause_if_storming(self.stop, self.notifier.watchdog)
        self.paused = None
        self.jobs_done += 1
        if self.jobs_done % 100 == 1:
            self.notifier.status(f"{self.jobs_done:,} jobs done")
        self.idle_since = now
        return None

    def lost(self) -> None:
        """Jobs in hand go back to ready with the old connection; nothing else to drop."""
        self.held = []

    def finish(self, stopped: bool) -> int:
        log.info("consumer_stopped", jobs=self.jobs_done)
        return exitcodes.OK

    def close(self) -> None:
        self.mapper.close()
        self.queue.close()

    def _results_ready(self) -> int:
        return int(self.queue.stats_tube(self.results_tube).get("current-jobs-ready", 0))

    def _wait_for_the_reducer(self) -> None:
        """Backpressure on results: checked before a reserve when the tube may be near the
        mark (pacing.ResultsGate), so it holds at most the mark plus one partial per consumer."""
        self.paused = None
        ready = self.gate.check(self._results_ready)
        if ready is not None and ready > self.gate.mark:
            self.paused = "results_backlog"
            self.gate.wait(ready, self._results_ready, self.stop, self.notifier.watchdog)
            self.paused = None

    def _check_finished(self) -> None:
        """While idle, look (every few seconds, one round trip) for the reducer's finished
        record, so an operator reading this consumer's log knows it can be stopped."""
        now = time.monotonic()
        if self.finished_seen or now - self.last_finished_check < FINISHED_CHECK_S:
            return
        self.last_finished_check = now
        if (
            finished_record(self.queue, self.spec.control_tube, self.identity, self.opts.signer)
            is not None
        ):
            self.finished_seen = True
            log.info("job_finished", hint="the reducer has finished this job; stop this consumer")

    def handle(self, job: greenstalk.Job[bytes]) -> None:
        """One reserved job; one quick to map brings along more that are ready (bare item IDs
        from a foreign producer are one item per job), so their round trips are shared."""
        crashpoint("consumer.after_reserve")
        first = self._decode(job)
        if first is None:
            return
        group = [first]
        for extra in self.queue.reserve_many_ready(self.grouping.companions(len(first[1].items))):
            decoded = self._decode(extra)
            if decoded is not None:
                group.append(decoded)
        self._process(group)

    def _decode(self, job: greenstalk.Job[bytes]) -> tuple[greenstalk.Job[bytes], Batch] | None:
        try:
            self._check_signature(job.body)
            batch = decode_batch(job.body)
        except MalformedMessage as exc:
            self._bury_malformed(job, str(exc))
            return None
        if batch.version is not None and batch.version != self.spec.version:
            self._bury_malformed(
                job,
                f"batch made for version {batch.version!r} of job {self.spec.name}, and this "
                f"consumer runs version {self.spec.version!r}: run consumers of the "
                "producer's version, then `beanmill requeue`",
            )
            return None
        self.identity = batch.job or self.identity
        return job, batch

    def _check_signature(self, body: bytes) -> None:
        """With a secret, a body is mapped only if signed (or a bare ID, when accepted)."""
        if self.opts.accept_unsigned_ids and is_bare(body):
            return
        verify(self.opts.signer, body)

    def _encode(self, record: Result) -> bytes:
        return signed(self.opts.signer, encode_result(record))

    def _process(self, group: list[tuple[greenstalk.Job[bytes], Batch]]) -> None:
        """Map, reduce per job, put one result for the group, then delete the group.

        Items whose map() raised travel in the partial as failures: the reducer applies the
        good ones and schedules a retry of the rest (or keeps them as failed, at the last
        attempt) in one commit, so a batch handed out twice never counts an item twice."""
        jobs = [job for job, _ in group]
        self._hold(jobs)
        try:
            self._put_and_delete(group, jobs)
        finally:
            self._hold([])

    def _put_and_delete(
        self, group: list[tuple[greenstalk.Job[bytes], Batch]], jobs: list[greenstalk.Job[bytes]]
    ) -> None:
        began = time.monotonic()
        outcomes = self.mapper.map(items_of(group), self.keep_alive)
        partials, start = [], 0
        for _, batch in group:
            end = start + len(batch.items)
            part = outcomes[start:end]
            partials.append(partial_of(batch, part, self.spec.reduce, self.policy, self.host))
            start = end
        self.storm.record(outcomes)
        self.grouping.mapped(len(outcomes), time.monotonic() - began)
        if self.metrics is not None:
            self.metrics.mapped(partials, time.monotonic() - began)
        record = partials[0] if len(partials) == 1 else Partials(tuple(partials))
        try:
            self.queue.put(self.results_tube, self._encode(record), ttr=self.opts.result_ttr)
        except greenstalk.JobTooBigError:
            for (job, batch), partial in zip(group, partials, strict=True):
                if not self._put_alone(job, batch, partial):
                    jobs.remove(job)  # buried instead
        crashpoint("consumer.after_put")
        if any(p.failed for p in partials):
            crashpoint("consumer.after_put_with_failures")
        lost = len(jobs) - self.queue.delete_many([job.id for job in jobs])
        if lost:
            log.warning(
                "job_lost_before_delete",
                jobs=lost,
                hint="TTR expired or beanstalkd restarted; the duplicate is absorbed",
            )
        crashpoint("consumer.after_delete")
        for partial in partials:
            log_failures(partial)
        log.debug("jobs_done", jobs=len(jobs), items=len(outcomes))

    def _put_alone(self, job: greenstalk.Job[bytes], batch: Batch, partial: Partial) -> bool:
        """A group's partial that did not fit, put on its own; if it still does not fit, its
        batch fails for good without its value; False if even that cannot fit, and the job
        was buried instead."""
        for candidate in (partial, without_value(partial, batch)):
            try:
                self.queue.put(self.results_tube, self._encode(candidate), ttr=self.opts.result_ttr)
                return True
            except greenstalk.JobTooBigError:
                continue
        error = ValueError(oversize_error(partial))
        self._bury(job, failed_record(job.id, batch, error, self.host))
        log.error("batch_buried", batch=batch.batch, job_id=job.id, error=str(error))
        return False

    def _hold(self, jobs: list[greenstalk.Job[bytes]]) -> None:
        self.held, self.touch_every, self.last_touch = jobs, None, time.monotonic()

    def keep_alive(self) -> None:
        """Feed the watchdog, and touch the jobs in hand at half their TTR, so a long batch,
        or a put that waits for beanstalkd's disk, is not handed out again. Touches are not
        written to the binlog, so they work while its disk is full."""
        self.notifier.watchdog()
        if not self.held:
            return
        if self.touch_every is None:  # a TTR of None: the job is gone, the touch drops it
            self.touch_every = max(0.5, (self.queue.ttr(self.held[0]) or 0) / 2)
        now = time.monotonic()
        if now - self.last_touch >= self.touch_every:
            self.held = still_held(self.queue, self.held)
            log.debug("jobs_touched", jobs=len(self.held), held_s=round(now - self.last_touch, 1))
            self.last_touch = now

    def _bury_malformed(self, job: greenstalk.Job[bytes], reason: str) -> None:
        """Unusable bodies are kept (buried) for an operator to inspect, never dropped."""
        self._hold([job])
        try:
            self._bury(job, malformed_record(job.id, job.body, reason, self.host))
        finally:
            self._hold([])
        log.error("job_malformed_buried", job_id=job.id, reason=reason, bytes=len(job.body))

    def _bury(self, job: greenstalk.Job[bytes], record: ErrorRecord) -> None:
        """Tell the reducer why (the record must get through even with a small -z), then
        bury."""
        try:
            self.queue.put(self.results_tube, self._encode(record), ttr=self.opts.result_ttr)
        except greenstalk.JobTooBigError:
            self.queue.put(
                self.results_tube, self._encode(shortened(record)), ttr=self.opts.result_ttr
            )
        self.queue.bury(job)


def run_consumer(spec: Spec, address: str, opts: ConsumerOptions, stop: threading.Event) -> int:
    consumer = Consumer(spec, address, opts, stop)
    flag_waits(consumer.queue.binlog_waits, address, spec.name, "consumer")
    server = serve_consumer(consumer, opts.http) if opts.http else None
    rc = drive(consumer, stop)
    if server is not None:
        server.close()
    if consumer.mapper.hung_threads:
        # Python would wait for the hung threads at exit, forever: leave without them.
        sys.stderr.flush()
        os._exit(rc)
    return rc
