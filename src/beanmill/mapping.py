"""Mapping a batch on worker threads while the calling thread keeps the job alive.

The thread that reserved a job owns its connection (greenstalk is not thread-safe), so
map() runs on a pool and the caller's `tick` touches the job between waits. A map() that
hangs past `map_timeout` fails the batch like an exception; its thread cannot be killed,
so the pool is replaced and the hung thread is counted (the consumer restarts itself once
too many have piled up).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait

from beanmill.jsontypes import JSON, Item

WAIT_S = 0.25


class MapTimeout(Exception):
    """A map() call ran longer than --map-timeout."""


class Mapper:
    def __init__(
        self,
        fn: Callable[[Item], JSON],
        threads: int,
        map_timeout: float | None,
        thread_setup: Callable[[], None] | None = None,
    ) -> None:
        self.fn, self.threads, self.map_timeout = fn, max(1, threads), map_timeout
        self.thread_setup = thread_setup
        self.pool = self._new_pool()
        self.hung_threads = 0

    def _new_pool(self) -> ThreadPoolExecutor:
        """Each worker thread runs the spec's thread_setup() once (its own connections)."""
        return ThreadPoolExecutor(max_workers=self.threads, initializer=self.thread_setup)

    def map(self, items: Sequence[Item], tick: Callable[[], None]) -> list[JSON]:
        """Values in item order; `tick` runs on this thread every WAIT_S while maps run."""
        running: dict[int, float] = {}  # thread id -> when its current map() started

        def call(item: Item) -> JSON:
            me = threading.get_ident()
            running[me] = time.monotonic()
            try:
                return self.fn(item)
            finally:
                running.pop(me, None)

        if self.threads == 1:
            futures: list[Future[list[JSON]]] = [self.pool.submit(lambda: [call(i) for i in items])]
        else:
            futures = [self.pool.submit(lambda i=i: [call(i)]) for i in items]  # type: ignore[misc]
        while True:
            done, pending = wait(futures, timeout=WAIT_S, return_when=FIRST_EXCEPTION)
            if not pending or any(f.exception() is not None for f in done):
                break
            tick()
            oldest = min(running.values(), default=None)
            if self.map_timeout and oldest and time.monotonic() - oldest > self.map_timeout:
                self._abandon_pool(futures)
                raise MapTimeout(f"map() ran longer than --map-timeout {self.map_timeout:g}s")
        return [value for f in futures for value in f.result()]

    def _abandon_pool(self, futures: list[Future[list[JSON]]]) -> None:
        for f in futures:
            f.cancel()
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.hung_threads += sum(1 for f in futures if f.running())
        self.pool = self._new_pool()

    def close(self) -> None:
        """Join the workers, unless some hang: then they are left to die with the process."""
        self.pool.shutdown(wait=self.hung_threads == 0, cancel_futures=True)
