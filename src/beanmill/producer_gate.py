"""The producer's hold on its queue: the job's lease renewed through hours of waiting, the
high-water wait that bounds beanstalkd's memory, and queue actions retried across reconnects."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

from beanmill.beanstalk.connection import Queue
from beanmill.beanstalk.lease import RENEW_EVERY_S, Lease
from beanmill.errors import QueueLost
from beanmill.notify import Notifier
from beanmill.producer_end import reducer_finished
from beanmill.signing import Signer

T = TypeVar("T")


class Gate:
    """When the producer may put more: below the high water, while the job is not finished."""

    def __init__(
        self,
        queue: Queue,
        lease: Lease,
        tubes: tuple[str, str],
        high_water: int,
        signer: Signer | None,
        stop: threading.Event,
        notifier: Notifier,
    ) -> None:
        self.queue, self.lease, self.signer = queue, lease, signer
        self.items_tube, self.control_tube = tubes
        self.high_water, self.stop, self.notifier = high_water, stop, notifier
        self.last_renew = time.monotonic()
        #: The reducer's `finished` record was seen: no more batches.
        self.finished_early = False
        self.budget = 0  # puts left before the next high-water check

    def renew_lease(self) -> None:
        """At most every RENEW_EVERY_S: held through hours of waiting; a lost one stops us."""
        if time.monotonic() - self.last_renew < RENEW_EVERY_S:
            return
        self.lease.keep()
        self.last_renew = time.monotonic()

    def wait_below_high_water(self, identity: str) -> None:
        """Backpressure: never let more than `high_water` batches wait in beanstalkd's memory."""
        self.renew_lease()
        if reducer_finished(self.queue, self.control_tube, identity, self.signer):
            self.finished_early = True
            return
        while not self.stop.is_set():
            ready = self.queue.stats_tube(self.items_tube).get("current-jobs-ready", 0)
            if ready < self.high_water:
                return
            self.notifier.watchdog()  # waiting on consumers is not hanging
            self.renew_lease()
            time.sleep(0.05)

    def refill(self) -> None:
        """The puts allowed until the next high-water check: a tenth of it, at least one."""
        self.budget = max(1, self.high_water // 10)

    def retrying(self, action: Callable[[], T]) -> T | None:
        """Run a queue action, reconnecting on loss; None if told to stop before it ran.

        A put repeated after a lost reply is a duplicate, which the ledger absorbs.
        """
        while True:
            try:
                return action()
            except QueueLost:
                if not self.queue.reconnect(self.stop, self.notifier.watchdog):
                    return None

    def release(self) -> None:
        self.lease.release()
