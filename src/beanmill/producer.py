"""The producer role: items to batch jobs, under a high-water mark, then an `end` record."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import structlog

from beanmill import exitcodes
from beanmill.beanstalk.connection import Queue
from beanmill.beanstalk.lease import hold
from beanmill.crashpoint import crashpoint
from beanmill.cursor import Cursor, load_cursor, save_cursor
from beanmill.driver import drive
from beanmill.identity import population_of
from beanmill.ids import Layout
from beanmill.jobspec import Spec
from beanmill.jsontypes import Item
from beanmill.notify import Notifier
from beanmill.producer_cursor import CursorKeeper
from beanmill.producer_end import check_count, end_body
from beanmill.producer_gate import Gate
from beanmill.producer_stream import ItemBatches
from beanmill.putahead import PUT_AHEAD, Group, Putter, take
from beanmill.rebuild import serve_rebuild
from beanmill.signing import Signer
from beanmill.source import DEFAULT_BATCH_SIZE

log = structlog.get_logger()


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
    """Puts the batches of items() from its cursor on, then the `end` record; its collaborators
    hold the lease and high water (gate), the cursor and the batches of items()."""

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
        lease = hold(address, spec.name, "producer", self.queue.binlog_waits)
        tubes = (self.items_tube, spec.control_tube)
        self.gate = Gate(
            self.queue, lease, tubes, opts.high_water, opts.signer, stop, self.notifier
        )
        self.putter = Putter(self.queue, self.items_tube, self.layout, opts, spec.version)
        self.keeper = CursorKeeper(spec, self.layout, state)
        self.source = ItemBatches(spec, self.layout, state)
        self.identity = ""
        self.cursor: Cursor
        self.items: Iterable[Item] = ()
        self.batches: Iterator[tuple[int, list[Item]]] = iter(())
        #: A batch taken from items() and not yet put (a lost connection interrupted it).
        self.pending: Group = []

    # -- the role's steps (driver.py runs them) ---------------------------------------------

    def start(self) -> int | None:
        saved = load_cursor(self.state)
        self.items = self.spec.items()  # once: for its fingerprint, then for its batches
        cursor = self.keeper.open(saved, population_of(self.items))
        self.identity, self.cursor = cursor.identity, cursor
        serve_rebuild(self, wait=self.opts.rebuild)
        if cursor.finished:
            self._put_end(cursor)
            log.info("producer_already_finished", batches=cursor.next_batch, items=cursor.items_put)
            return exitcodes.OK
        log.info("producer_started", from_batch=cursor.next_batch, layout=self.layout.tag)
        self.batches = self.source.from_cursor(self.items, cursor)
        self.keeper.last_save = time.monotonic()
        return None

    def step(self, now: float) -> int | None:
        """Put a group of batches (putahead). One that a lost connection interrupted is put
        again (duplicates, if the first put got through, which the ledger absorbs)."""
        gate = self.gate
        if not self.pending:
            if gate.budget <= 0:
                gate.wait_below_high_water(self.identity)
                gate.refill()
                if gate.finished_early:
                    # Batches put after the reducer's drain would wait forever: drain again.
                    self.queue.drain(self.items_tube)
                    self.cursor = replace(self.cursor, finished=True)
                    return exitcodes.OK
            self.pending = take(self.batches, min(PUT_AHEAD, gate.budget))
            if not self.pending:
                check_count(self.items, self.cursor)
                self.cursor = replace(self.cursor, finished=True)
                return exitcodes.OK
        group, put = self.pending, self.putter.put(self.pending, self.identity)
        self.pending = []
        self.source.was_put(group)
        crashpoint("producer.after_put")
        gate.budget -= len(group)
        digest = self.source.digest(self.cursor)
        self.cursor = self.keeper.after_put(self.cursor, group, put, digest, now)
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
        self.gate.release()

    def _put_end(self, cursor: Cursor) -> None:
        end = end_body(cursor, self.identity, self.layout.tag, self.opts.signer)
        self.gate.retrying(lambda: self.queue.put(self.results_tube, end, ttr=self.opts.ttr))


def run_producer(
    spec: Spec, address: str, state: Path, opts: ProducerOptions, stop: threading.Event
) -> int:
    """Producer entry point: exit 0 when every batch is put or when asked to stop."""
    return drive(Producer(spec, address, state, opts, stop), stop)
