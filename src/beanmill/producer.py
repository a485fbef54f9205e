"""The producer role: items to batch jobs, under a high-water mark, then an `end` record."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

import structlog

from beanmill import exitcodes
from beanmill.beanstalk.connection import Queue
from beanmill.beanstalk.lease import RENEW_EVERY_S, hold
from beanmill.control import finished_record
from beanmill.crashpoint import crashpoint
from beanmill.cursor import Cursor, check_population, check_resumable, load_cursor, save_cursor
from beanmill.driver import drive
from beanmill.errors import (
    BeanmillError,
    CursorError,
    QueueLost,
    SpecError,
    UserCodeError,
)
from beanmill.identity import Population, StreamDigest, job_tag, new_run_id, population_of
from beanmill.ids import Layout
from beanmill.jobspec import Spec
from beanmill.jsontypes import Item
from beanmill.notify import Notifier
from beanmill.putahead import PUT_AHEAD, Group, Putter, items_in, take
from beanmill.rebuild import serve_rebuild
from beanmill.signing import Signer, signed
from beanmill.source import DEFAULT_BATCH_SIZE, batches, population_size
from beanmill.usercode import user_frame
from beanmill.wire import EndRecord, encode_result

log = structlog.get_logger()
T = TypeVar("T")

CURSOR_EVERY_S = 1.0


@dataclass(frozen=True)
class ProducerOptions:
    batch_size: int = DEFAULT_BATCH_SIZE
    ttr: int = 60
    high_water: int = 1000
    order: str = "sequential"
    seed: int | None = None
    priority: int = 2**31
    connect_retry: float = 0.0
    signer: Signer | None = None
    #: Wait for the reducer's rebuild request at start, and serve it (rebuild.py).
    rebuild: bool = False


class Producer:
    def __init__(
        self, spec: Spec, address: str, state: Path, opts: ProducerOptions, stop: threading.Event
    ) -> None:
        self.spec, self.state, self.opts, self.stop = spec, state, opts, stop
        self.items_tube, self.results_tube = spec.tubes
        self.layout = Layout(opts.batch_size, opts.order, opts.seed)
        self.notifier = Notifier()
        self.queue = Queue(
            address,
            use=self.items_tube,
            retry_s=opts.connect_retry,
            stop=stop,
            tick=self.notifier.watchdog,
        )
        # One producer per job: two would put their batches twice and race on the cursor.
        self.lease = hold(address, spec.name, "producer", self.queue.binlog_waits)
        self.putter = Putter(self.queue, self.items_tube, self.layout, opts, spec.version)
        self.last_renew = time.monotonic()
        self.finished_early = False
        self.identity = ""
        self.stream: StreamDigest | None = None
        self.cursor: Cursor
        self.items: Iterable[Item] = ()
        self.batches: Iterator[tuple[int, list[Item]]] = iter(())
        #: A batch taken from items() and not yet put (a lost connection interrupted it).
        self.pending: Group = []
        self.budget = 0  # puts left before the next high-water check
        self.last_save = 0.0

    def _renew_lease(self) -> None:
        """At most every RENEW_EVERY_S: held through hours of waiting; a lost one stops us."""
        if time.monotonic() - self.last_renew < RENEW_EVERY_S:
            return
        self.lease.keep()
        self.last_renew = time.monotonic()

    def _wait_below_high_water(self) -> None:
        """Backpressure: never let more than `high_water` batches wait in beanstalkd's memory."""
        self._renew_lease()
        if (
            finished_record(self.queue, self.spec.control_tube, self.identity, self.opts.signer)
            is not None
        ):
            log.info("job_finished", hint="the reducer stopped the job; no more batches")
            self.finished_early = True
            return
        while not self.stop.is_set():
            ready = self.queue.stats_tube(self.items_tube).get("current-jobs-ready", 0)
            if ready < self.opts.high_water:
                return
            self.notifier.watchdog()  # waiting on consumers is not hanging
            self._renew_lease()
            time.sleep(0.05)

    # -- the role's steps (driver.py runs them) ---------------------------------------------

    def start(self) -> int | None:
        wanted = Cursor(
            job=self.spec.name,
            batch_size=self.opts.batch_size,
            order=self.opts.order,
            seed=self.opts.seed,
        )
        saved = load_cursor(self.state)
        self.items = self.spec.items()  # once: for its fingerprint, then for its batches
        population = population_of(self.items)
        cursor = saved or self._new_job(wanted, population)
        if saved is None:  # before any put: a restart must find the same identity
            save_cursor(self.state, cursor)
        check_resumable(cursor, wanted, self.state)
        check_population(cursor, population, self.state)
        if not cursor.identity:  # a cursor from before identities: give it one now
            tag = job_tag(self.spec.name, self.spec.version, self.layout.tag, None, "")
            cursor = replace(cursor, identity=tag)
        self.identity, self.cursor = cursor.identity, cursor
        serve_rebuild(self, wait=self.opts.rebuild)
        if cursor.finished:
            self._put_end(cursor)
            log.info("producer_already_finished", batches=cursor.next_batch, items=cursor.items_put)
            return exitcodes.OK
        log.info("producer_started", from_batch=cursor.next_batch, layout=self.layout.tag)
        self.batches = self._stream_from(self.items, cursor)
        self.last_save = time.monotonic()
        return None

    def step(self, now: float) -> int | None:
        """Put a group of batches (putahead). One that a lost connection interrupted is put
        again (duplicates, if the first put got through, which the ledger absorbs)."""
        if not self.pending:
            if self.budget <= 0:
                self._wait_below_high_water()
                self.budget = max(1, self.opts.high_water // 10)
                if self.finished_early:
                    # Batches put after the reducer's drain would wait forever: drain again.
                    self.queue.drain(self.items_tube)
                    self.cursor = replace(self.cursor, finished=True)
                    return exitcodes.OK
            self.pending = take(self.batches, min(PUT_AHEAD, self.budget))
            if not self.pending:
                self._check_count()
                self.cursor = replace(self.cursor, finished=True)
                return exitcodes.OK
        group, put = self.pending, self.putter.put(self.pending, self.identity)
        self.pending = []
        if self.stream is not None:
            self.stream.update([item for _, chunk in group for item in chunk])
        crashpoint("producer.after_put")
        self.budget -= len(group)
        c = self.cursor
        self.cursor = self._at(c, group[-1][0] + 1, c.items_put + items_in(group), c.jobs_put + put)
        if now - self.last_save >= CURSOR_EVERY_S:
            save_cursor(self.state, self.cursor)
            crashpoint("producer.after_cursor")
            self.last_save = now
        return None

    def lost(self) -> None:
        """Nothing to drop: the batch in hand is put again after the reconnect."""

    def finish(self, stopped: bool) -> int:
        cursor = self.cursor
        save_cursor(self.state, cursor)
        if cursor.finished:
            self._put_end(cursor)
            log.info("producer_finished", batches=cursor.next_batch, items=cursor.items_put)
        return exitcodes.OK

    def close(self) -> None:
        self.queue.close()
        self.lease.release()

    def _check_count(self) -> None:
        total = population_size(self.items)
        if total is not None and self.cursor.items_put != total:
            raise SpecError(
                f"items() gave {self.cursor.items_put} items but its len() says {total}"
            )

    def _new_job(self, wanted: Cursor, population: Population | None) -> Cursor:
        run = new_run_id()
        tag = job_tag(self.spec.name, self.spec.version, self.layout.tag, population, run)
        return replace(
            wanted,
            identity=tag,
            run=run,
            population_size=population.size if population else None,
            population_digest=population.digest if population else None,
        )

    def _stream_from(
        self, items: Iterable[Item], cursor: Cursor
    ) -> Iterator[tuple[int, list[Item]]]:
        """A stream (no len()) is read again from its start, and the items before the cursor
        must digest as they did when they were put: else items() changed under the job."""
        if population_of(items) is not None:
            self.stream = None
            yield from self._user_batches(items, cursor.next_batch)
            return
        self.stream = StreamDigest()
        for seq, chunk in self._user_batches(items, 0):
            if seq == cursor.next_batch:
                self._check_stream(cursor)
            if seq >= cursor.next_batch:
                yield seq, chunk  # the caller digests it once it is put
            else:
                self.stream.update(chunk)
        if cursor.next_batch > 0 and not cursor.finished:
            self._check_stream(cursor)  # it ended before the cursor: it shrank

    def _check_stream(self, cursor: Cursor) -> None:
        assert self.stream is not None
        if cursor.stream_digest is not None and self.stream.hexdigest() != cursor.stream_digest:
            raise CursorError(
                f"items() gives other items than when this job started (its first "
                f"{cursor.items_put:,} differ; cursor {self.state}): the total would match "
                f"neither; run it under a new job name, or `beanmill reset --job "
                f"{self.spec.name}` to start it over"
            )

    def _user_batches(self, items: Iterable[Item], start: int) -> Iterator[tuple[int, list[Item]]]:
        """batches(), where an exception raised while iterating items() is the user's."""
        stream = batches(items, self.layout, start)
        while True:
            try:
                yield next(stream)
            except StopIteration:
                return
            except BeanmillError:
                raise
            except Exception as exc:
                raise UserCodeError(
                    f"items() of {self.spec.ref} raised while iterating: {user_frame(exc)}"
                ) from None

    def _at(self, cursor: Cursor, next_batch: int, items_put: int, jobs_put: int) -> Cursor:
        stream = self.stream.hexdigest() if self.stream is not None else cursor.stream_digest
        return replace(
            cursor,
            next_batch=next_batch,
            items_put=items_put,
            jobs_put=jobs_put,
            stream_digest=stream,
        )

    def _retrying(self, action: Callable[[], T]) -> T | None:
        """Run a queue action, reconnecting on loss; None if told to stop before it ran.

        A put repeated after a lost reply is a duplicate, which the ledger absorbs.
        """
        while True:
            try:
                return action()
            except QueueLost:
                if not self.queue.reconnect(self.stop, self.notifier.watchdog):
                    return None

    def _put_end(self, cursor: Cursor) -> None:
        record = EndRecord(cursor.jobs_put, cursor.items_put, self.identity, self.layout.tag)
        end = signed(self.opts.signer, encode_result(record))
        self._retrying(lambda: self.queue.put(self.results_tube, end, ttr=self.opts.ttr))


def run_producer(
    spec: Spec, address: str, state: Path, opts: ProducerOptions, stop: threading.Event
) -> int:
    """Producer entry point: exit 0 when every batch is put or when asked to stop."""
    return drive(Producer(spec, address, state, opts, stop), stop)
