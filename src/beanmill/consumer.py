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
from dataclasses import dataclass, replace

import greenstalk
import structlog

from beanmill.control import finished_record
from beanmill.crashpoint import crashpoint
from beanmill.errors import MalformedMessage, QueueLost, UserCodeError
from beanmill.jobspec import Spec
from beanmill.jsontypes import JSON, Item
from beanmill.mapping import Failed, Mapper, Outcome, summary
from beanmill.metrics import ConsumerMetrics
from beanmill.notify import Notifier
from beanmill.queue import Queue
from beanmill.signals import StopRequested, interruptible
from beanmill.storm import Storm
from beanmill.usercode import user_frame
from beanmill.web import HttpAddress, serve_consumer
from beanmill.wire import (
    Batch,
    ErrorRecord,
    Failure,
    Partial,
    Partials,
    decode_batch,
    dumps,
    encode_result,
    malformed_batch_id,
)

log = structlog.get_logger()

RETRY_DELAY_MAX_S = 3600
FINISHED_CHECK_S = 5.0
MAX_HUNG_PER_THREAD = 4
#: A job with fewer items than this brings along up to GROUP_JOBS - 1 more ready jobs.
SMALL_BATCH = 32
GROUP_JOBS = 64
#: Most ready partials on the results tube before consumers wait for the reducer: a stopped
#: reducer then bounds beanstalkd's memory and binlog instead of letting them grow.
RESULTS_HIGH_WATER = 5000
#: Paused consumers go on once the backlog is down to this share of the mark, so a reducer
#: that is only a little behind does not make them pause and resume at every job.
RESULTS_RESUME_SHARE = 0.75
RESULTS_CHECK_S = 0.5


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
        self.storm = Storm()
        #: The identity of the batches taken so far, to know this run's finished record.
        self.identity: str | None = None
        self.host = socket.gethostname()
        self.jobs_done = 0
        self.finished_seen = False
        self.last_finished_check = 0.0
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

    def run(self) -> int:
        self._start_user_code()
        log.info("consumer_started", tube=self.items_tube, threads=self.opts.threads)
        self.notifier.ready()
        idle_since = time.monotonic()
        rc = 0
        while not self.stop.is_set():
            self.notifier.watchdog()
            if self.mapper.hung_threads > MAX_HUNG_PER_THREAD * self.opts.threads:
                log.error(
                    "maps_hung",
                    threads=self.mapper.hung_threads,
                    hint="exiting so a restart frees them; give map() its own timeouts",
                )
                rc = 1
                break
            try:
                self._wait_for_the_reducer()
                with interruptible():
                    job = self.queue.reserve(timeout=1)
                if job is None:
                    self._check_finished()
                    if (
                        self.opts.idle_exit is not None
                        and time.monotonic() - idle_since >= self.opts.idle_exit
                    ):
                        break
                    continue
                self.handle(job)
                self.paused = "storm"
                self.storm.pause_if_storming(self.stop, self.notifier.watchdog)
                self.paused = None
                self.jobs_done += 1
                if self.jobs_done % 100 == 1:
                    self.notifier.status(f"{self.jobs_done:,} jobs done")
                idle_since = time.monotonic()
            except StopRequested:
                break  # nothing held: the connection is closed below, mid-reply or not
            except QueueLost:
                if not self.queue.reconnect(self.stop, self.notifier.watchdog):
                    break
        self.notifier.stopping()
        log.info("consumer_stopped", jobs=self.jobs_done)
        self.mapper.close()
        self.queue.close()
        return rc

    def _results_ready(self) -> int:
        return int(self.queue.stats_tube(self.results_tube).get("current-jobs-ready", 0))

    def _wait_for_the_reducer(self) -> None:
        """Backpressure on results: checked before each reserve (one round trip per batch),
        so the tube holds at most the mark plus one partial per consumer."""
        self.paused = None
        mark = self.opts.results_high_water
        ready = self._results_ready()
        if ready <= mark:
            return
        log.warning(
            "results_backlog_paused",
            ready=ready,
            high_water=mark,
            hint="the reducer is behind or stopped: start it (or find why it is slow); "
            "this consumer goes on by itself once the results are taken",
        )
        paused, self.paused = time.monotonic(), "results_backlog"
        while ready > mark * RESULTS_RESUME_SHARE:
            self.notifier.watchdog()  # waiting on the reducer is not hanging
            if self.stop.wait(RESULTS_CHECK_S):
                return
            ready = self._results_ready()
        self.paused = None
        log.info("results_backlog_resumed", ready=ready, paused_s=round(time.monotonic() - paused))

    def _check_finished(self) -> None:
        """While idle, look (every few seconds, one round trip) for the reducer's finished
        record, so an operator reading this consumer's log knows it can be stopped."""
        now = time.monotonic()
        if self.finished_seen or now - self.last_finished_check < FINISHED_CHECK_S:
            return
        self.last_finished_check = now
        if finished_record(self.queue, self.spec.control_tube, self.identity) is not None:
            self.finished_seen = True
            log.info("job_finished", hint="the reducer has finished this job; stop this consumer")

    def handle(self, job: greenstalk.Job[bytes]) -> None:
        """One reserved job; a small one brings along more that are ready (bare item IDs from
        a foreign producer are one item per job), so their round trips are shared."""
        crashpoint("consumer.after_reserve")
        first = self._decode(job)
        if first is None:
            return
        group = [first]
        if len(first[1].items) < SMALL_BATCH:
            for extra in self.queue.reserve_many_ready(GROUP_JOBS - 1):
                decoded = self._decode(extra)
                if decoded is not None:
                    group.append(decoded)
        self._process(group)

    def _decode(self, job: greenstalk.Job[bytes]) -> tuple[greenstalk.Job[bytes], Batch] | None:
        try:
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
        outcomes = self.mapper.map([i for _, batch in group for i in batch.items], self.keep_alive)
        partials, start = [], 0
        for _, batch in group:
            end = start + len(batch.items)
            partials.append(self._partial(batch, outcomes[start:end]))
            start = end
        self.storm.record(outcomes)
        if self.metrics is not None:
            self.metrics.mapped(partials, time.monotonic() - began)
        record = partials[0] if len(partials) == 1 else Partials(tuple(partials))
        try:
            self.queue.put(self.results_tube, encode_result(record), ttr=self.opts.result_ttr)
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
            self._log_failures(partial)
        log.debug("jobs_done", jobs=len(jobs), items=len(outcomes))

    def _partial(self, batch: Batch, outcomes: list[Outcome]) -> Partial:
        """The batch's partial over its good items, with its failed items grouped by error."""
        good = [o for o in outcomes if not isinstance(o, Failed)]
        failures: dict[str, tuple[Failed, list[Item]]] = {}
        for item, outcome in zip(batch.items, outcomes, strict=True):
            if isinstance(outcome, Failed):
                failures.setdefault(outcome.error, (outcome, []))[1].append(item)
        value: JSON = None
        if good:
            try:
                value = self.spec.reduce(good)
                dumps(value)  # NaN, a set: the reducer could not take it either
            except Exception as exc:  # the user's reduce(): every item of the batch fails
                why = Failed.of(exc)
                failures = {why.error: (why, list(batch.items))}
                good, value = [], None
        return Partial(
            batches=(batch.batch,),
            items=len(good),
            value=value,
            failed=tuple(Failure(f.error, f.traceback, tuple(i)) for f, i in failures.values()),
            attempt=batch.attempt,
            retry_delay=min(self.opts.retry_delay * 2**batch.attempt, RETRY_DELAY_MAX_S),
            final=batch.attempt + 1 >= self.opts.max_attempts,
            host=self.host,
            job=batch.job,
        )

    def _put_alone(self, job: greenstalk.Job[bytes], batch: Batch, partial: Partial) -> bool:
        """A partial over beanstalkd's -z: its batch fails for good (reduce() must return
        something smaller), with tracebacks cut until the record fits; False if even the
        bare list of items cannot fit, and the job was buried instead."""
        error = (
            f"the partial is over beanstalkd's max job size: make reduce() return something "
            f"smaller (a top-k instead of every value); {partial.failed_items} items failed too"
        )
        if partial.items == 0:
            error = partial.failed[0].error if partial.failed else error
        failure = Failure(error, "", batch.items)
        whole = replace(partial, items=0, value=None, failed=(failure,), final=True)
        for candidate in (partial, whole):
            try:
                self.queue.put(
                    self.results_tube, encode_result(candidate), ttr=self.opts.result_ttr
                )
                return True
            except greenstalk.JobTooBigError:
                continue
        self._bury_with_error(job, batch, ValueError(error))
        return False

    def _log_failures(self, partial: Partial) -> None:
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

    def _hold(self, jobs: list[greenstalk.Job[bytes]]) -> None:
        self.held, self.touch_every, self.last_touch = jobs, None, time.monotonic()

    def keep_alive(self) -> None:
        """Feed the watchdog, and touch the jobs in hand at half their TTR, so a long batch,
        or a put that waits for beanstalkd's disk, is not handed out again. Touches are not
        written to the binlog, so they work while its disk is full."""
        self.notifier.watchdog()
        if not self.held:
            return
        if self.touch_every is None:
            self.touch_every = max(0.5, self.queue.ttr(self.held[0]) / 2)
        now = time.monotonic()
        if now - self.last_touch >= self.touch_every:
            self.queue.touch_many([job.id for job in self.held])
            log.debug("jobs_touched", jobs=len(self.held), held_s=round(now - self.last_touch, 1))
            self.last_touch = now

    def _bury_with_error(self, job: greenstalk.Job[bytes], batch: Batch, exc: Exception) -> None:
        record = ErrorRecord(
            batch=batch.batch,
            job_id=job.id,
            attempts=batch.attempt + 1,
            reason="failed",
            exception=f"{type(exc).__name__}: {exc}",
            traceback=summary(exc),
            host=self.host,
        )
        self._put_error(record)
        self.queue.bury(job)
        log.error("batch_buried", batch=batch.batch, job_id=job.id, error=record.exception)

    def _bury_malformed(self, job: greenstalk.Job[bytes], reason: str) -> None:
        """Unusable bodies are kept (buried) for an operator to inspect, never dropped."""
        batch_id = malformed_batch_id(job.body)
        record = ErrorRecord(
            batch=batch_id,
            job_id=job.id,
            attempts=1,
            reason="malformed",
            exception=reason,
            traceback="",
            host=self.host,
        )
        self._hold([job])
        try:
            self._put_error(record)
            self.queue.bury(job)
        finally:
            self._hold([])
        log.error("job_malformed_buried", job_id=job.id, reason=reason, bytes=len(job.body))

    def _put_error(self, record: ErrorRecord) -> None:
        """The error record must get through even when beanstalkd's -z is small."""
        try:
            self.queue.put(self.results_tube, encode_result(record), ttr=self.opts.result_ttr)
        except greenstalk.JobTooBigError:
            short = replace(record, exception=record.exception[:200], traceback="")
            self.queue.put(self.results_tube, encode_result(short), ttr=self.opts.result_ttr)


def run_consumer(spec: Spec, address: str, opts: ConsumerOptions, stop: threading.Event) -> int:
    consumer = Consumer(spec, address, opts, stop)
    server = serve_consumer(consumer, opts.http) if opts.http else None
    rc = consumer.run()
    if server is not None:
        server.close()
    if consumer.mapper.hung_threads:
        # Python would wait for the hung threads at exit, forever: leave without them.
        sys.stderr.flush()
        os._exit(rc)
    return rc
