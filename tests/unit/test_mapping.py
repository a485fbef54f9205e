"""The mapper: item order, real concurrency, per-thread setup, and the map timeout."""

from __future__ import annotations

import threading

import pytest

from beanmill.jsontypes import JSON, Item
from beanmill.mapping import Failed, Mapper


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


def test_a_map_past_the_timeout_fails_its_item_and_the_rest_still_run() -> None:
    stuck = threading.Event()

    def fn(item: Item) -> JSON:
        if item == "hang":
            stuck.wait(30)
        return item

    mapper = Mapper(fn, 1, map_timeout=0.3)
    outcomes = mapper.map(["a", "hang", "z"], lambda: None)
    assert outcomes[0] == "a" and outcomes[2] == "z"
    failed = outcomes[1]
    assert isinstance(failed, Failed)
    assert failed.error.startswith("MapTimeout") and "--map-timeout" in failed.error
    assert mapper.hung_threads == 1
    assert mapper.map(["b", "c"], lambda: None) == ["b", "c"]
    stuck.set()
    mapper.close()


@pytest.mark.parametrize(
    "exc",
    [
        FileNotFoundError(2, "No such file or directory", "/data/42.txt"),
        ConnectionError("their database went away"),
        OSError("disk says no"),
        AssertionError("their own assert"),
        MemoryError(),
        ValueError("bad value"),
    ],
    ids=lambda e: type(e).__name__,
)
@pytest.mark.parametrize("threads", [1, 4])
def test_any_exception_from_map_fails_only_its_own_item(exc: BaseException, threads: int) -> None:
    """The user's exception is the item's, whatever its type: an OSError or a ConnectionError
    from their own code is never taken for a lost queue, and never sinks the batch."""

    def fn(item: Item) -> JSON:
        if item == 42:
            raise exc
        return item

    mapper = Mapper(fn, threads, None)
    outcomes = mapper.map(list(range(40, 45)), lambda: None)
    mapper.close()
    assert [o for o in outcomes if not isinstance(o, Failed)] == [40, 41, 43, 44]
    failed = outcomes[2]
    assert isinstance(failed, Failed)
    assert failed.error.startswith(type(exc).__name__)
    assert "test_mapping.py" in failed.traceback


def test_setup_failure_in_the_map_thread_is_raised_at_start() -> None:
    def thread_setup() -> None:
        raise RuntimeError("cannot open the database")

    mapper = Mapper(lambda i: i, 1, None, thread_setup)
    with pytest.raises(RuntimeError, match="cannot open the database"):
        mapper.start()
    mapper.close()


def test_thread_setup_runs_in_the_thread_that_maps() -> None:
    import sqlite3

    local = threading.local()

    def thread_setup() -> None:
        local.db = sqlite3.connect(":memory:")

    def fn(item: Item) -> JSON:
        return int(local.db.execute("SELECT ? * 2", (item,)).fetchone()[0])

    mapper = Mapper(fn, 1, None, thread_setup)
    mapper.start()
    assert mapper.map([1, 2, 3], lambda: None) == [2, 4, 6]
    mapper.close()
