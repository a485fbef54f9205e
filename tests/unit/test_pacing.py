"""A consumer's grouping of cheap jobs and its rarer backlog checks."""

from __future__ import annotations

from beanmill.pacing import GATE_SHARE, GROUP_JOBS, SMALL_BATCH, Grouping, ResultsGate


def test_small_jobs_always_bring_along_a_full_group() -> None:
    assert Grouping().companions(1) == GROUP_JOBS - 1
    assert Grouping().companions(SMALL_BATCH - 1) == GROUP_JOBS - 1


def test_a_first_batch_is_mapped_alone_then_cheap_maps_are_grouped() -> None:
    grouping = Grouping()
    assert grouping.companions(500) == 0  # nothing measured yet
    grouping.mapped(500, 500 * 0.3e-6)  # a trivial map: 0.3 us per item
    assert 10 < grouping.companions(500) < GROUP_JOBS
    grouping.mapped(500, 500 * 0.01e-6)
    assert grouping.companions(500) == GROUP_JOBS - 1


def test_a_costly_map_is_not_grouped() -> None:
    grouping = Grouping()
    grouping.mapped(500, 500 * 20e-6)  # 20 us per item: 10 ms per batch
    assert grouping.companions(500) == 0
    grouping.mapped(500, 500 * 5e-6)  # the estimate follows the map as it gets cheaper
    assert 0 <= grouping.companions(500) < GROUP_JOBS - 1


def simulate(mark: int, consumers: int, rounds: int) -> int:
    """Consumers putting one partial per reserve, with no reducer: the most ever ready."""
    gates = [ResultsGate(mark) for _ in range(consumers)]
    paused = [False] * consumers
    ready = most = 0
    for _ in range(rounds):
        for i, gate in enumerate(gates):
            if paused[i]:
                continue
            seen = gate.check(lambda: ready)  # noqa: B023 -- called at once, in this round
            if seen is not None and seen > mark:
                paused[i] = True  # it waits for the reducer from here on
                continue
            ready += 1
            most = max(most, ready)
    return most


def test_the_backlog_passes_the_mark_by_at_most_one_partial_per_consumer() -> None:
    for mark in (1, 20, 5000):
        for consumers in (1, 2, GATE_SHARE):
            most = simulate(mark, consumers, rounds=3 * mark + 10)
            assert mark < most <= mark + consumers, (mark, consumers, most)


def test_far_below_the_mark_the_backlog_is_looked_up_rarely() -> None:
    calls = 0

    def fetch() -> int:
        nonlocal calls
        calls += 1
        return 0

    gate = ResultsGate(5000)
    looked = [gate.check(fetch) is not None for _ in range(1000)]
    assert looked[0]
    assert calls <= 2  # every 5000 // GATE_SHARE + 1 reserves
