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
import traceback
from dataclasses import dataclass, replace

import greenstalk
import structlog

from beanmill.crashpoint import crashpoint
from beanmill.errors import MalformedMessage
from beanmill.jobspec import Spec
from beanmill.jsontypes import JSON, Item
from beanmill.mapping import Mapper
from beanmill.notify import Notifier
from beanmill.queue import CONNECTION_ERRORS, Queue
from beanmill.signals import StopRequested, interruptible
from beanmill.wire import (
    Batch,
    ErrorRecord,
    Partial,
    Partials,
    decode_batch,
    encode_batch,
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


class Consumer:
    def __init__(
        self, spec: Spec, address: str, opts: ConsumerOptions, stop: threading.Event
    ) -> None:
        self.spec, self.opts, self.stop = spec, opts, stop
        self.items_tube, self.results_tube = spec.tubes
        self.queue = Queue(
            address, use=self.results_tube, watch=self.items_tube, retry_s=opts.connect_retry
        )
        self.mapper = Mapper(spec.map, opts.threads, opts.map_timeout, spec.thread_setup)
        self.host = socket.gethostname()
        self.jobs_done = 0
        self.finished_seen = False
        self.notifier = Notifier()
        self.last_finished_check = 0.0

    def run(self) -> int:
        self.spec.setup()
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
                self.jobs_done += 1
                if self.jobs_done % 100 == 1:
                    self.notifier.status(f"{self.jobs_done:,} jobs done")
                idle_since = time.monotonic()
            except StopRequested:
                break  # nothing held: the connection is closed below, mid-reply or not
            except CONNECTION_ERRORS:
                if not self.queue.reconnect(self.stop, self.notifier.watchdog):
                    break
        self.notifier.stopping()
        log.info("consumer_stopped", jobs=self.jobs_done)
        self.mapper.close()
        self.queue.close()
        return rc

    def _check_finished(self) -> None:
        """While idle, look (every few seconds, one round trip) for the reducer's finished
        record, so an operator reading this consumer's log knows it can be stopped."""
        now = time.monotonic()
        if self.finished_seen or now - self.last_finished_check < FINISHED_CHECK_S:
            return
        self.last_finished_check = now
        if self.queue.has_ready(self.spec.control_tube):
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
            return job, decode_batch(job.body)
        except MalformedMessage as exc:
            self._bury_malformed(job, str(exc))
            return None

    def _process(self, group: list[tuple[greenstalk.Job[bytes], Batch]]) -> None:
        """Map, reduce per job, put one result for the group, then delete the group.

        A failure in a group of several is pinned on its batch by doing each job alone."""
        jobs = [job for job, _ in group]
        try:
            values = self._map_jobs(jobs, [i for _, batch in group for i in batch.items])
            partials, start = [], 0
            for _, batch in group:
                end = start + len(batch.items)
                value = self.spec.reduce(values[start:end])
                partials.append(Partial((batch.batch,), len(batch.items), value))
                start = end
            record = partials[0] if len(partials) == 1 else Partials(tuple(partials))
            body = encode_result(record)
            self.queue.put(self.results_tube, body, ttr=self.opts.result_ttr)
        except Exception as exc:
            if isinstance(exc, CONNECTION_ERRORS):
                raise
            if len(group) > 1:
                for one in group:
                    self._process([one])
                return
            job, batch = group[0]
            if isinstance(exc, greenstalk.JobTooBigError):
                exc = ValueError(
                    f"the partial is {len(body)} bytes, over beanstalkd's max job size: make "
                    "reduce() return something smaller (a top-k instead of every value)"
                )
                self._fail(job, batch, exc, final=True)
            else:
                self._fail(job, batch, exc)
            return
        crashpoint("consumer.after_put")
        lost = len(jobs) - self.queue.delete_many([job.id for job in jobs])
        if lost:
            log.warning(
                "job_lost_before_delete",
                jobs=lost,
                hint="TTR expired or beanstalkd restarted; the duplicate is absorbed",
            )
        crashpoint("consumer.after_delete")
        log.debug("jobs_done", jobs=len(jobs), items=len(values))

    def _map_jobs(self, jobs: list[greenstalk.Job[bytes]], items: list[Item]) -> list[JSON]:
        """Map the items, touching the jobs at half their TTR so long batches are not re-run."""
        started = last_touch = time.monotonic()
        touch_every: float | None = None

        def keep_alive() -> None:
            nonlocal touch_every, last_touch
            self.notifier.watchdog()
            if touch_every is None:
                touch_every = max(0.5, self.queue.ttr(jobs[0]) / 2)
            now = time.monotonic()
            if now - last_touch >= touch_every:
                self.queue.touch_many([job.id for job in jobs])
                last_touch = now
                log.debug("jobs_touched", jobs=len(jobs), running_s=round(now - started, 1))

        return self.mapper.map(items, keep_alive)

    def _fail(
        self, job: greenstalk.Job[bytes], batch: Batch, exc: Exception, final: bool = False
    ) -> None:
        """Retry later with a growing delay; after the last attempt, bury and tell the reducer.

        Attempts are counted in the body (a copy with attempt + 1), not by beanstalkd, whose
        counters do not survive a restart.
        """
        attempts = batch.attempt + 1
        bound = log.bind(
            batch=batch.batch, job_id=job.id, attempt=attempts, error=f"{type(exc).__name__}: {exc}"
        )
        if attempts < self.opts.max_attempts and not final:
            delay = min(self.opts.retry_delay * 2**batch.attempt, RETRY_DELAY_MAX_S)
            retry = Batch(batch.batch, batch.items, attempt=attempts)
            ttr = self.queue.ttr(job)
            self.queue.put(self.items_tube, encode_batch(retry), delay=delay, ttr=ttr)
            crashpoint("consumer.after_retry_put")
            self.queue.delete(job.id)
            bound.warning("batch_failed_retrying", delay_s=delay)
            return
        record = ErrorRecord(
            batch=batch.batch,
            job_id=job.id,
            attempts=attempts,
            reason="failed",
            exception=f"{type(exc).__name__}: {exc}",
            traceback=_summary(exc),
            host=self.host,
        )
        self._put_error(record)
        self.queue.bury(job)
        bound.error("batch_buried", hint="fix the cause, then `beanmill requeue`")

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
        self._put_error(record)
        self.queue.bury(job)
        log.error("job_malformed_buried", job_id=job.id, reason=reason, bytes=len(job.body))

    def _put_error(self, record: ErrorRecord) -> None:
        """The error record must get through even when beanstalkd's -z is small."""
        try:
            self.queue.put(self.results_tube, encode_result(record), ttr=self.opts.result_ttr)
        except greenstalk.JobTooBigError:
            short = replace(record, exception=record.exception[:200], traceback="")
            self.queue.put(self.results_tube, encode_result(short), ttr=self.opts.result_ttr)


def _summary(exc: BaseException, limit: int = 2000) -> str:
    """The last frames of the traceback: enough to find the line, small enough for a job."""
    text = "".join(traceback.format_exception(exc, limit=-4))
    return text[-limit:]


def run_consumer(spec: Spec, address: str, opts: ConsumerOptions, stop: threading.Event) -> int:
    consumer = Consumer(spec, address, opts, stop)
    rc = consumer.run()
    if consumer.mapper.hung_threads:
        # Python would wait for the hung threads at exit, forever: leave without them.
        sys.stderr.flush()
        os._exit(rc)
    return rc
