"""What a consumer does between jobs rather than mapping: wait for the reducer while the
results backlog is over the mark, pause in a storm of failures, and, idle, look for the
reducer's finished record."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import structlog

from beanmill.beanstalk.connection import Queue
from beanmill.control import finished_record
from beanmill.pacing import ResultsGate
from beanmill.signing import Signer
from beanmill.storm import Storm

log = structlog.get_logger()

FINISHED_CHECK_S = 5.0


class Waits:
    """The consumer's pauses; `paused` says why it waits (storm, results_backlog), for
    /metrics."""

    def __init__(
        self,
        queue: Queue,
        results_tube: str,
        mark: int,
        stop: threading.Event,
        watchdog: Callable[[], None],
    ) -> None:
        self.queue, self.results_tube, self.stop, self.watchdog = (
            queue,
            results_tube,
            stop,
            watchdog,
        )
        self.gate = ResultsGate(mark)
        self.storm = Storm()
        self.paused: str | None = None

    def _results_ready(self) -> int:
        return int(self.queue.stats_tube(self.results_tube).get("current-jobs-ready", 0))

    def for_the_reducer(self) -> None:
        """Backpressure on results: checked before a reserve when the tube may be near the
        mark (pacing.ResultsGate), so it holds at most the mark plus one partial per consumer."""
        self.paused = None
        ready = self.gate.check(self._results_ready)
        if ready is not None and ready > self.gate.mark:
            self.paused = "results_backlog"
            self.gate.wait(ready, self._results_ready, self.stop, self.watchdog)
            self.paused = None

    def if_storming(self) -> None:
        """After a job: most items failing one way pause the consumer (storm.py)."""
        self.paused = "storm"
        self.storm.pause_if_storming(self.stop, self.watchdog)
        self.paused = None


class FinishedWatch:
    """While idle, look (every few seconds, one round trip) for the reducer's finished
    record, so an operator reading this consumer's log knows it can be stopped."""

    def __init__(self, queue: Queue, control_tube: str, signer: Signer | None) -> None:
        self.queue, self.control_tube, self.signer = queue, control_tube, signer
        self.seen = False
        self.last_check = 0.0

    def look(self, identity: str | None) -> None:
        """`identity`: of the batches taken so far, to know this run's finished record."""
        now = time.monotonic()
        if self.seen or now - self.last_check < FINISHED_CHECK_S:
            return
        self.last_check = now
        if finished_record(self.queue, self.control_tube, identity, self.signer) is not None:
            self.seen = True
            log.info("job_finished", hint="the reducer has finished this job; stop this consumer")
