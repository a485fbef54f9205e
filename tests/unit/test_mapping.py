"""The mapper: item order, real concurrency, per-thread setup, and the map timeout."""

from __future__ import annotations

import threading

import pytest

from beanmill.jsontypes import JSON, Item
from beanmill.mapping import Mapper, MapTimeout


def test_values_come_back_in_item_order_with_one_or_many_threads() -> None:
    for threads in (1, 8):
        mapper = Mapper(lambda i: int(i) * 2, threads, None)
        assert mapper.map(list(range(100)), lambda: None) == [i * 2 for i in range(100)]
        mapper.close()


def test_threads_really_map_concurrently_and_each_runs_thread_setup() -> None:
    """Four maps must be in flight at once to pass the barrier: no timing involved."""
    barrier = threading.Barrier(4, timeout=10)
    local = threading.local()
    set_up: set[int] = set()

    def thread_setup() -> None:
        local.conn = f"connection-{threading.get_ident()}"
        set_up.add(threading.get_ident())

    def fn(item: Item) -> JSON:
        barrier.wait()
        assert local.conn == f"connection-{threading.get_ident()}"
        return item

    mapper = Mapper(fn, 4, None, thread_setup)
    assert mapper.map([1, 2, 3, 4, 5, 6, 7, 8], lambda: None) == [1, 2, 3, 4, 5, 6, 7, 8]
    assert len(set_up) == 4
    mapper.close()


def test_the_caller_ticks_while_maps_run() -> None:
    release = threading.Event()
    ticks: list[int] = []

    def tick() -> None:
        ticks.append(1)
        if len(ticks) >= 3:
            release.set()

    mapper = Mapper(lambda i: release.wait(10) and i, 1, None)
    assert mapper.map([7], tick) == [7]
    assert len(ticks) >= 3
    mapper.close()


def test_a_map_past_the_timeout_raises_and_the_next_batch_still_runs() -> None:
    stuck = threading.Event()

    def fn(item: Item) -> JSON:
        if item == "hang":
            stuck.wait(30)
        return item

    mapper = Mapper(fn, 1, map_timeout=0.3)
    with pytest.raises(MapTimeout, match="--map-timeout"):
        mapper.map(["a", "hang"], lambda: None)
    assert mapper.hung_threads == 1
    assert mapper.map(["b", "c"], lambda: None) == ["b", "c"]
    stuck.set()
    mapper.close()
