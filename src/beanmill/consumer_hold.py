"""The jobs a consumer has in hand, kept reserved while they are mapped and while a put of
their partial waits for space on beanstalkd's binlog disk."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import greenstalk
import structlog

from beanmill.beanstalk.connection import Queue, still_held

log = structlog.get_logger()


class Hand:
    """The jobs held and when they were last touched; `keep_alive` is the queue's tick."""

    def __init__(self, queue: Queue, watchdog: Callable[[], None]) -> None:
        self.queue, self.watchdog = queue, watchdog
        self.jobs: list[greenstalk.Job[bytes]] = []
        self.touch_every: float | None = None
        self.last_touch = 0.0

    def hold(self, jobs: list[greenstalk.Job[bytes]]) -> None:
        """From now on touch `jobs` (the very list: a job buried meanwhile leaves it)."""
        self.jobs, self.touch_every, self.last_touch = jobs, None, time.monotonic()

    @contextmanager
    def holding(self, jobs: list[greenstalk.Job[bytes]]) -> Iterator[None]:
        """Hold `jobs` for the block, and nothing after it, whatever happens in it."""
        self.hold(jobs)
        try:
            yield
        finally:
            self.hold([])

    def keep_alive(self) -> None:
        """Feed the watchdog, and touch the jobs in hand at half their TTR, so a long batch,
        or a put that waits for beanstalkd's disk, is not handed out again. Touches are not
        written to the binlog, so they work while its disk is full."""
        self.watchdog()
        if not self.jobs:
            return
        if self.touch_every is None:  # a TTR of None: the job is gone, the touch drops it
            self.touch_every = max(0.5, (self.queue.ttr(self.jobs[0]) or 0) / 2)
        now = time.monotonic()
        if now - self.last_touch >= self.touch_every:
            self.jobs = still_held(self.queue, self.jobs)
            log.debug("jobs_touched", jobs=len(self.jobs), held_s=round(now - self.last_touch, 1))
            self.last_touch = now
