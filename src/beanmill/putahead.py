"""The producer puts several batches per round trip.

One put per batch waited for beanstalkd's reply each time (~100 µs on loopback): for a
cheap map the producer's round trips were a visible share of the run. beanstalkd answers
pipelined commands in order, so a group of batches costs one round trip
(`Queue.put_many`). The cursor advances only after the whole group is acknowledged, so a
crash halfway re-puts the group: duplicates, which the reducer's ledger absorbs.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import TYPE_CHECKING, TypeVar

import greenstalk
import structlog

from beanmill.beanstalk.connection import Queue
from beanmill.errors import SpecError
from beanmill.ids import Layout, halves
from beanmill.jsontypes import Item
from beanmill.signing import signed
from beanmill.wire import Batch, encode_batch

if TYPE_CHECKING:
    from beanmill.producer import ProducerOptions

log = structlog.get_logger()

#: Batches per round trip; the high-water budget (high_water / 10) caps it too.
PUT_AHEAD = 8

T = TypeVar("T")
Group = list[tuple[int, list[Item]]]


def take(stream: Iterator[T], most: int) -> list[T]:
    """Up to `most` next elements; fewer (or none) at the end."""
    return list(itertools.islice(stream, max(1, most)))


def items_in(group: Group) -> int:
    return sum(len(chunk) for _, chunk in group)


class Putter:
    """Puts a producer's groups of batches on the items tube."""

    def __init__(
        self, queue: Queue, tube: str, layout: Layout, opts: ProducerOptions, version: str | None
    ) -> None:
        self.queue, self.tube, self.layout, self.opts = queue, tube, layout, opts
        self.version = version

    def put(self, group: Group, job: str) -> int:
        """One round trip for the group; if a batch is too big for beanstalkd's -z, the
        group goes again batch by batch, splitting what must be. Returns the jobs put."""
        if len(group) > 1:
            bodies = [self._body(self.layout.batch_id(seq), tuple(c), job) for seq, c in group]
            try:
                self.queue.put_many(
                    self.tube, bodies, ttr=self.opts.ttr, priority=self.opts.priority
                )
                return len(group)
            except greenstalk.JobTooBigError:
                pass
        return sum(self.put_batch(self.layout.batch_id(seq), tuple(c), job) for seq, c in group)

    def _body(self, batch_id: str, items: tuple[Item, ...], job: str) -> bytes:
        batch = Batch(batch_id, items, job=job, version=self.version)
        return signed(self.opts.signer, encode_batch(batch))

    def put_batch(self, batch_id: str, items: tuple[Item, ...], job: str) -> int:
        """Put one batch; one too big for beanstalkd's -z is put as two halves (`.0`, `.1`),
        recursively, with IDs as deterministic as the batch's. Returns the jobs put."""
        body = self._body(batch_id, items, job)
        try:
            self.queue.put(self.tube, body, ttr=self.opts.ttr, priority=self.opts.priority)
            return 1
        except greenstalk.JobTooBigError:
            if len(items) == 1:
                raise SpecError(
                    f"item {str(items[0])[:40]!r} alone makes a {len(body)}-byte job, over "
                    "beanstalkd's max job size: start beanstalkd with a larger -z"
                ) from None
        log.warning(
            "batch_split",
            batch=batch_id,
            bytes=len(body),
            hint="over beanstalkd's -z: a smaller --batch-size avoids the split",
        )
        half = len(items) // 2
        first, second = halves(batch_id)
        return self.put_batch(first, items[:half], job) + self.put_batch(second, items[half:], job)
