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
from beanmill.beanstalk.connection import Queue
from beanmill.consumer_hold import Hand
from beanmill.consumer_records import Group, Results, partials_of, read_batch
from beanmill.consumer_waits import FinishedWatch, Waits
from beanmill.crashpoint import crashpoint
from beanmill.driver import drive
from beanmill.errors import MalformedMessage, UserCodeError
from beanmill.jobspec import Spec
from beanmill.mapping import Mapper
from beanmill.notify import Notifier
from beanmill.pacing import Grouping, items_of
from beanmill.retries import RetryPolicy, log_failures, malformed_record
from beanmill.signals import interruptible
from beanmill.signing import Signer
from beanmill.usercode import user_frame
from beanmill.web import HttpAddress, serve_consumer
from beanmill.wire import Batch

if TYPE_CHECKING:
    from collections.abc import Callable

    from beanmill.metrics import ConsumerMetrics

log = structlog.get_logger()

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
    """The role's steps; its collaborators hold the jobs in hand (consumer_hold.py), put the
    records (consumer_records.py) and wait between jobs (consumer_waits.py)."""

    def __init__(
        self, spec: Spec, address: str, opts: ConsumerOptions, stop: threading.Event
    ) -> None:
        self.spec, self.opts, self.stop = spec, opts, stop
        self.items_tube, self.results_tube = spec.tubes
        self.notifier = Notifier()
        queue = Queue(
            address,
            use=self.results_tube,
            watch=self.items_tube,
            retry_s=opts.connect_retry,
            stop=stop,
            tick=self.keep_alive,  # the queue calls it only once the hand below exists
        )
        self.queue, self.hand = queue, Hand(queue, self.notifier.watchdog)
        self.mapper = Mapper(spec.map, opts.threads, opts.map_timeout, _thread_setup(spec, opts))
        self.grouping, self.host = Grouping(), socket.gethostname()
        self.policy = RetryPolicy(opts.max_attempts, opts.retry_delay)
        self.results = Results(queue, self.results_tube, opts.signer, opts.result_ttr, self.host)
        self.waits = Waits(
            queue, self.results_tube, opts.results_high_water, stop, self.notifier.watchdog
        )
        self.finished = FinishedWatch(queue, spec.control_tube, opts.signer)
        #: The identity of the batches taken so far, to know this run's finished record.
        self.identity: str | None = None
        self.jobs_done = 0
        self.idle_since = 0.0
        self.metrics: ConsumerMetrics | None = None

    # -- the role's steps (driver.py runs them) ---------------------------------------------

    def start(self) -> int | None:
        _start_user_code(self.spec, self.opts, self.mapper)
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
        self.waits.for_the_reducer()
        with interruptible():
            job = self.queue.reserve(timeout=1)
        if job is None:
            self.finished.look(self.identity)
            idle = self.opts.idle_exit
            return exitcodes.OK if idle is not None and now - self.idle_since >= idle else None
        self.handle(job)
        self.waits.if_storming()
        self.jobs_done += 1
        if self.jobs_done % 100 == 1:
            self.notifier.status(f"{self.jobs_done:,} jobs done")
        self.idle_since = now
        return None

    def lost(self) -> None:
        """Jobs in hand go back to ready with the old connection; nothing else to drop."""
        self.hand.jobs = []

    def finish(self, stopped: bool) -> int:
        log.info("consumer_stopped", jobs=self.jobs_done)
        return exitcodes.OK

    def close(self) -> None:
        self.mapper.close()
        self.queue.close()

    def keep_alive(self) -> None:
        """The queue's tick while it waits, and the mapper's: feed the watchdog, touch."""
        self.hand.keep_alive()

    # -- one job and its group --------------------------------------------------------------

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
        opts = self.opts
        try:
            batch = read_batch(job.body, self.spec, opts.signer, opts.accept_unsigned_ids)
        except MalformedMessage as exc:
            self._bury_malformed(job, str(exc))
            return None
        self.identity = batch.job or self.identity
        return job, batch

    def _process(self, group: Group) -> None:
        """Map, reduce per job, put one result for the group, then delete the group.

        Items whose map() raised travel in the partial as failures: the reducer applies the
        good ones and schedules a retry of the rest (or keeps them as failed, at the last
        attempt) in one commit, so a batch handed out twice never counts an item twice."""
        jobs = [job for job, _ in group]
        with self.hand.holding(jobs):
            self._put_and_delete(group, jobs)

    def _put_and_delete(self, group: Group, jobs: list[greenstalk.Job[bytes]]) -> None:
        began = time.monotonic()
        outcomes = self.mapper.map(items_of(group), self.keep_alive)
        partials = partials_of(group, outcomes, self.spec.reduce, self.policy, self.host)
        self.waits.storm.record(outcomes)
        self.grouping.mapped(len(outcomes), time.monotonic() - began)
        if self.metrics is not None:
            self.metrics.mapped(partials, time.monotonic() - began)
        self.results.put_group(group, partials, jobs)  # a job buried instead leaves `jobs`
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

    def _bury_malformed(self, job: greenstalk.Job[bytes], reason: str) -> None:
        """Unusable bodies are kept (buried) for an operator to inspect, never dropped."""
        with self.hand.holding([job]):
            self.results.bury(job, malformed_record(job.id, job.body, reason, self.host))
        log.error("job_malformed_buried", job_id=job.id, reason=reason, bytes=len(job.body))


def _thread_setup(spec: Spec, opts: ConsumerOptions) -> Callable[[], None]:
    """What each map thread runs first. At --threads 1 setup() runs in the one map thread,
    so what it opens is usable in map() (a sqlite3 connection refuses other threads);
    thread_setup() runs in each."""

    def setup() -> None:
        if opts.threads == 1:
            spec.setup()
        hook = spec.thread_setup
        if hook is not None:
            hook()

    return setup


def _start_user_code(spec: Spec, opts: ConsumerOptions, mapper: Mapper) -> None:
    """setup() here with several map threads (else in the one), then the pool; a failure
    of the user's code there is one line, not a traceback of ours."""
    try:
        if opts.threads > 1:
            spec.setup()
        mapper.start()
    except Exception as exc:
        raise UserCodeError(f"setup() of {spec.ref} failed: {user_frame(exc)}") from None


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
