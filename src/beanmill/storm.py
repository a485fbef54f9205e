"""Failure storms: when most recent items fail with one exception type, pause the consumer.

A database that is down or a disk that is unmounted fails every item the same way; burning
through the queue then only spends every item's attempts. The consumer records the batch in
hand as usual (its failed items are retried later with a growing delay) and then pauses with
a doubling backoff before it takes the next job, logging one line per pause. A success ends
the storm. A storm is a change, so it needs at least one success seen by this consumer first:
a job whose items all fail from the start is not paused, it ends with its failures counted.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence

import structlog

from beanmill.mapping import Failed, Outcome, all_good

log = structlog.get_logger()

#: The recent item outcomes looked at, and how many of them must fail with one type.
WINDOW = 40
MIN_SEEN = 20
SHARE = 0.9
PAUSE_FIRST_S = 2.0
PAUSE_MAX_S = 60.0


class Storm:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.recent: deque[str | None] = deque(maxlen=WINDOW)
        self.succeeded = False
        self.pauses = 0
        self.paused_until = 0.0
        self.clock = clock

    def record(self, outcomes: Sequence[Outcome]) -> None:
        """Only the last WINDOW outcomes can stay in `recent`; an earlier success still
        counts (the rare case of a window of failures after it)."""
        if all_good(outcomes):
            if outcomes:
                self.recent.extend([None] * min(len(outcomes), WINDOW))
                self.succeeded, self.pauses = True, 0
            return
        for outcome in outcomes:
            if isinstance(outcome, Failed):
                self.recent.append(outcome.error.partition(":")[0])
            else:
                self.recent.append(None)
                self.succeeded = True
                self.pauses = 0

    def storming(self) -> str | None:
        """The exception type that fails most recent items, if it is a storm."""
        if not self.succeeded or len(self.recent) < MIN_SEEN:
            return None
        kind, count = Counter(self.recent).most_common(1)[0]
        if kind is not None and count >= SHARE * len(self.recent):
            return kind
        return None

    def next_pause(self) -> float:
        return float(min(PAUSE_FIRST_S * 2.0**self.pauses, PAUSE_MAX_S))

    def pause_if_storming(self, stop: threading.Event, tick: Callable[[], None]) -> float:
        """Sleep out a storm's pause (stoppable, feeding the watchdog); the seconds paused."""
        kind = self.storming()
        if kind is None:
            return 0.0
        pause = self.next_pause()
        self.pauses += 1
        log.warning(
            "failure_storm_paused",
            error=kind,
            share=f"{sum(1 for k in self.recent if k == kind)}/{len(self.recent)}",
            pause_s=pause,
            hint="most recent items fail the same way (a database down? a disk gone?): "
            "pausing before the next job; a success ends the pause",
        )
        self.recent.clear()  # the next batch decides afresh
        deadline = self.clock() + pause
        while not stop.is_set() and (left := deadline - self.clock()) > 0:
            stop.wait(min(1.0, left))
            tick()
        return pause
