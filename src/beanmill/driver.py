"""One driver for every role: ready, watchdog, reconnect, stopping and close, in one place.

A role is a step function called by this loop (huey's consumer: initialize / loop(now) /
shutdown), so a role's module holds only what the role does, and a test can call its
`step(now)` directly. Only the queue layer's QueueLost means "reconnect": an exception from
the user's code never reaches here as one.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol

from beanmill import exitcodes
from beanmill.beanstalk.connection import Queue
from beanmill.errors import QueueLost
from beanmill.notify import Notifier
from beanmill.signals import StopRequested


class Role(Protocol):
    queue: Queue
    notifier: Notifier

    def start(self) -> int | None:
        """Before the loop; an exit code ends the role at once (nothing to do)."""

    def step(self, now: float) -> int | None:
        """One unit of work; an exit code ends the loop (the role is done)."""

    def lost(self) -> None:
        """The connection broke: drop what depended on it (uncommitted, unacknowledged)."""

    def finish(self, stopped: bool) -> int:
        """After the loop: the last commit, the final lines; the exit code."""

    def close(self) -> None:
        """Release connections, files and leases; called whatever happened."""


def drive(role: Role, stop: threading.Event) -> int:
    """Run `role` until it is done or `stop` is set; its exit code."""
    try:
        early = role.start()
        role.notifier.ready()  # also when there is nothing to do: exiting unready fails
        if early is not None:
            return early
        done: int | None = None
        while done is None and not stop.is_set():
            role.notifier.watchdog()
            try:
                done = role.step(time.monotonic())
            except StopRequested:
                break  # raised into a wait that held nothing
            except QueueLost:
                role.lost()
                if not role.queue.reconnect(stop, role.notifier.watchdog):
                    break
        role.notifier.stopping()
        final = role.finish(stopped=stop.is_set())
        return done if done not in (None, exitcodes.OK) else final
    finally:
        role.close()
