"""How much a consumer takes per round trip, and how often it asks about the results backlog.

Per batch a consumer pays a reserve, a put, a delete and a stats-tube check: for a cheap
map that is most of its time. Two changes make those round trips rarer without losing the
guarantees they serve:

- `Grouping`: a job brings along more ready jobs (mapped together, one partial record for
  all) while the group's mapping stays short, so a slow map still spreads over consumers
  job by job and only cheap ones are grouped.
- `ResultsGate`: the results backlog is looked up only when it could be near the mark.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from itertools import chain

import greenstalk
import structlog

from beanmill.jsontypes import Item
from beanmill.wire import Batch

log = structlog.get_logger()

#: A job with fewer items than this always brings along up to GROUP_JOBS - 1 more.
SMALL_BATCH = 32
GROUP_JOBS = 64
#: Larger jobs are grouped while the whole group maps in about this long: at the end of a
#: run the consumers then finish within this of each other, and a crash redoes little.
GROUP_MAP_S = 0.005
#: The backlog headroom is shared by this many consumers: with no more of them the results
#: tube never passes the mark by more than one partial per consumer.
GATE_SHARE = 8
#: Paused consumers go on once the backlog is down to this share of the mark, so a reducer
#: that is only a little behind does not make them pause and resume at every job.
RESULTS_RESUME_SHARE = 0.75
RESULTS_CHECK_S = 0.5


class Grouping:
    """Companion jobs for the next group, from the measured mapping time per item."""

    def __init__(self) -> None:
        self.per_item_s: float | None = None  # unknown until the first group is mapped

    def companions(self, items: int) -> int:
        """How many more ready jobs to reserve with a job of `items` items."""
        if items < SMALL_BATCH:
            return GROUP_JOBS - 1
        if self.per_item_s is None:
            return 0
        jobs = int(GROUP_MAP_S / max(self.per_item_s * items, 1e-9))
        return max(1, min(GROUP_JOBS, jobs)) - 1

    def mapped(self, items: int, seconds: float) -> None:
        if items > 0:
            latest = seconds / items
            known = self.per_item_s
            self.per_item_s = latest if known is None else 0.5 * known + 0.5 * latest


class ResultsGate:
    """The results tube's ready count, fetched only when the partials this consumer put since
    the last look could have brought it to `mark`: each consumer takes 1/GATE_SHARE of the
    headroom it saw. Near the mark it looks before every reserve, as it always did."""

    def __init__(self, mark: int) -> None:
        self.mark = mark
        self.allowance = 0

    def check(self, fetch: Callable[[], int]) -> int | None:
        """The ready count, or None when it is not due (one more reserve spent)."""
        if self.allowance > 0:
            self.allowance -= 1
            return None
        ready = fetch()
        self.allowance = max(0, self.mark - ready) // GATE_SHARE
        return ready

    def wait(
        self, ready: int, fetch: Callable[[], int], stop: threading.Event, tick: Callable[[], None]
    ) -> None:
        """Wait, over the mark, until the reducer has taken the backlog down (or a stop)."""
        log.warning(
            "results_backlog_paused",
            ready=ready,
            high_water=self.mark,
            hint="the reducer is behind or stopped: start it (or find why it is slow); "
            "this consumer goes on by itself once the results are taken",
        )
        paused = time.monotonic()
        while ready > self.mark * RESULTS_RESUME_SHARE:
            tick()  # waiting on the reducer is not hanging
            if stop.wait(RESULTS_CHECK_S):
                return
            ready = fetch()
        log.info("results_backlog_resumed", ready=ready, paused_s=round(time.monotonic() - paused))


def items_of(group: Sequence[tuple[greenstalk.Job[bytes], Batch]]) -> list[Item]:
    """A group's items, in order, joined at C speed."""
    return list(chain.from_iterable(batch.items for _, batch in group))
