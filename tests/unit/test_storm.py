"""Failure storms: a consumer pauses when most recent items fail one way, with a fake clock."""

from __future__ import annotations

import threading

from beanmill.mapping import Failed, Outcome
from beanmill.storm import MIN_SEEN, PAUSE_FIRST_S, PAUSE_MAX_S, Storm


class Clock:
    """Time that moves only when the storm waits on it."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class FakeStop(threading.Event):
    def __init__(self, clock: Clock) -> None:
        super().__init__()
        self.clock = clock

    def wait(self, timeout: float | None = None) -> bool:
        self.clock.now += timeout or 0.0
        return self.is_set()


DOWN = Failed("OperationalError: database is down", "")


def outcomes(good: int, bad: int) -> list[Outcome]:
    return [1] * good + [DOWN] * bad


def test_a_storm_after_successes_pauses_with_a_doubling_backoff_and_a_success_ends_it() -> None:
    clock = Clock()
    storm, stop, ticks = Storm(clock), FakeStop(clock), []
    storm.record(outcomes(good=5, bad=0))
    storm.record(outcomes(good=0, bad=MIN_SEEN * 2))
    assert storm.storming() == "OperationalError"
    pauses = []
    for _ in range(8):
        storm.record(outcomes(good=0, bad=MIN_SEEN))
        pauses.append(storm.pause_if_storming(stop, lambda: ticks.append(1)))
    assert pauses[:3] == [PAUSE_FIRST_S, 2 * PAUSE_FIRST_S, 4 * PAUSE_FIRST_S]
    assert max(pauses) == PAUSE_MAX_S and ticks, "the watchdog is fed while paused"
    storm.record(outcomes(good=1, bad=MIN_SEEN))
    assert storm.next_pause() == PAUSE_FIRST_S, "a success resets the backoff"


def test_items_that_fail_from_the_start_are_not_a_storm_so_the_run_still_ends() -> None:
    storm = Storm(Clock())
    storm.record(outcomes(good=0, bad=MIN_SEEN * 3))
    assert storm.storming() is None


def test_mixed_failures_are_not_a_storm() -> None:
    storm = Storm(Clock())
    storm.record(outcomes(good=10, bad=0))
    storm.record([Failed(f"E{i % 3}: x", "") for i in range(MIN_SEEN * 2)])
    assert storm.storming() is None


def test_a_stop_request_ends_a_pause_at_once() -> None:
    clock = Clock()
    storm, stop = Storm(clock), FakeStop(clock)
    storm.record(outcomes(good=1, bad=MIN_SEEN * 2))
    stop.set()
    storm.pause_if_storming(stop, lambda: None)
    assert clock.now == 0.0


def test_a_batch_of_successes_fills_the_window_and_ends_the_backoff() -> None:
    """The all-good fast path leaves what the item-by-item loop would: a window of
    successes (at most its size), the success mark, no pauses."""
    storm = Storm()
    storm.record([Failed("OSError: down", "")] * 30)
    storm.pauses = 3
    storm.record(list(range(500)))
    assert list(storm.recent) == [None] * storm.recent.maxlen  # type: ignore[operator]
    assert storm.succeeded and storm.pauses == 0
    storm.record([])
    assert storm.pauses == 0 and len(storm.recent) == storm.recent.maxlen
    small = Storm()
    small.record([1, 2, 3])
    assert list(small.recent) == [None, None, None]
