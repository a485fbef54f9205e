"""Mapping a batch on worker threads while the calling thread keeps the job alive.

The thread that reserved a job owns its connection (greenstalk is not thread-safe), so
map() runs on a pool and the caller's `tick` touches the job between waits. Each item's
outcome is its own: an exception of any type from the user's map() fails that item only.
A map() that hangs past `map_timeout` fails its item like an exception; its thread cannot
be killed, so the pool is replaced, the items not reached yet are mapped on the new one,
and the hung thread is counted (the consumer restarts itself once too many have piled up).

At --threads 1 the spec's setup() runs in the map thread itself, so what it opens (a sqlite3
connection, which refuses other threads) is usable in map().
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import cast

from beanmill.jsontypes import JSON, Item

WAIT_S = 0.25
TRACEBACK_CHARS = 2000


class MapTimeout(Exception):
    """A map() call ran longer than --map-timeout."""


def all_good(outcomes: Sequence[Outcome]) -> bool:
    """No item failed: one pass over the outcomes' types at C speed, not an isinstance each."""
    return not any(issubclass(t, Failed) for t in set(map(type, outcomes)))


@dataclass(frozen=True)
class Failed:
    """One item's map() raised: the exception as text, and the frames that find the line."""

    error: str
    traceback: str

    @classmethod
    def of(cls, exc: BaseException) -> Failed:
        return cls(f"{type(exc).__name__}: {exc}", summary(exc))


Outcome = JSON | Failed


def summary(exc: BaseException, limit: int = TRACEBACK_CHARS) -> str:
    """The last frames of the traceback: enough to find the line, small enough for a job."""
    text = "".join(traceback.format_exception(exc, limit=-4))
    return text[-limit:]


class _Pending:
    """Marks an item whose outcome is not known yet."""


_PENDING = _Pending()


class Mapper:
    def __init__(
        self,
        fn: Callable[[Item], JSON],
        threads: int,
        map_timeout: float | None,
        thread_setup: Callable[[], None] | None = None,
    ) -> None:
        """`thread_setup` runs once in every map thread before its first item (per-thread
        connections); a pool replaced after a hang runs it again in its new threads."""
        self.fn, self.threads, self.map_timeout = fn, max(1, threads), map_timeout
        self.thread_setup = thread_setup
        self._local = threading.local()
        self._lock = threading.Lock()
        self._generation = 0
        self.pool = self._new_pool()
        self.hung_threads = 0

    def _new_pool(self) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(max_workers=self.threads)

    def _ready_thread(self) -> None:
        if self.thread_setup is not None and not getattr(self._local, "ready", False):
            self.thread_setup()
        self._local.ready = True

    def start(self) -> None:
        """Run thread_setup now, in a map thread: a failure is the user's, raised here, at
        start, rather than once per item."""
        self.pool.submit(self._ready_thread).result()

    def map(self, items: Sequence[Item], tick: Callable[[], None]) -> list[Outcome]:
        """Outcomes in item order; `tick` runs on this thread every WAIT_S while maps run."""
        results: list[Outcome | _Pending] = [_PENDING] * len(items)
        todo = list(range(len(items)))
        while todo:
            self._run(items, todo, results, tick)
            if not self.map_timeout:  # nothing was abandoned: every item has its outcome
                return cast("list[Outcome]", results)
            todo = [i for i in todo if results[i] is _PENDING]
        return [r for r in results if not isinstance(r, _Pending)]

    def _run(
        self,
        items: Sequence[Item],
        todo: list[int],
        results: list[Outcome | _Pending],
        tick: Callable[[], None],
    ) -> None:
        """Map `todo` on the current pool until done, or until one map() hangs: then fail that
        item, replace the pool and return (the caller maps what is left on the new pool)."""
        generation = self._generation
        running: dict[int, tuple[int, float]] = {}  # thread -> (item index, started)

        def one(index: int) -> None:
            me = threading.get_ident()
            running[me] = (index, time.monotonic())
            try:
                self._ready_thread()
                outcome: Outcome = self.fn(items[index])
            except BaseException as exc:  # the user's code: any exception is the item's
                outcome = Failed.of(exc)
            finally:
                running.pop(me, None)
            with self._lock:
                if generation == self._generation:  # an abandoned pool's late answer is void
                    results[index] = outcome

        def several(indices: list[int]) -> None:
            for index in indices:
                if generation != self._generation:
                    return
                one(index)

        def all_of(indices: list[int]) -> None:
            """With no --map-timeout nothing can hang for us to abandon: no bookkeeping per
            item beyond its own try (this is the trivial map's hot loop)."""
            self._ready_thread()
            fn = self.fn
            for index in indices:
                try:
                    results[index] = fn(items[index])
                except BaseException as exc:  # the user's code: any exception is the item's
                    results[index] = Failed.of(exc)

        if self.threads == 1:
            task = several if self.map_timeout else all_of
            futures: list[Future[None]] = [self.pool.submit(task, todo)]
        else:
            futures = [self.pool.submit(one, i) for i in todo]
        while True:
            _, pending = wait(futures, timeout=WAIT_S)
            if not pending:
                return
            tick()
            if self.map_timeout and self._fail_hung(self.map_timeout, running, results, futures):
                return

    def _fail_hung(
        self,
        timeout: float,
        running: dict[int, tuple[int, float]],
        results: list[Outcome | _Pending],
        futures: list[Future[None]],
    ) -> bool:
        """Fail each item whose map() has run past --map-timeout, and give up this pool (its
        threads cannot be stopped); False while none has."""
        now = time.monotonic()
        hung = [i for i, started in list(running.values()) if now - started > timeout]
        if not hung:
            return False
        with self._lock:
            self._generation += 1
            for index in hung:
                results[index] = Failed.of(
                    MapTimeout(f"map() ran longer than --map-timeout {timeout:g}s")
                )
        self._abandon_pool(futures, len(hung))
        return True

    def _abandon_pool(self, futures: list[Future[None]], hung: int) -> None:
        for f in futures:
            f.cancel()
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.hung_threads += hung
        self.pool = self._new_pool()

    def close(self) -> None:
        """Join the workers, unless some hang: then they are left to die with the process."""
        self.pool.shutdown(wait=self.hung_threads == 0, cancel_futures=True)
