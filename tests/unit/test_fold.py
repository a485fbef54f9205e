"""The reducer's fold and commit policy, in-process: no beanstalkd, no clock, no sleeps."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from beanmill.checkpoint import Snapshot
from beanmill.commit_policy import (
    CAUGHT_UP_LOOK_S,
    CAUGHT_UP_MOST,
    CAUGHT_UP_SHARE,
    NEAR_END_JOBS,
    Staging,
    commit_due,
    next_reserve,
)
from beanmill.fold import Commit, Fold
from beanmill.jsontypes import JSON
from beanmill.reducers import Sum
from beanmill.wire import EndRecord, Failure, Partial, dumps, encode_result


class MemoryLedger:
    """The checkpoint's ledger and schedule of retries, as the fold sees them."""

    def __init__(self) -> None:
        self.ledger: dict[str, int] = {}
        self.scheduled: dict[str, tuple[JSON, ...]] = {}
        self.failed: list[JSON] = []
        self.total: JSON = None
        self.items = 0

    def applied(self, batch_ids: Iterable[str]) -> set[str]:
        return {b for b in batch_ids if b in self.ledger}

    def pending(self, batch_ids: Iterable[str]) -> set[str]:
        return {b for b in batch_ids if b in self.scheduled}

    def apply(self, change: Commit) -> Snapshot:
        for batch, n in change.applied:
            self.ledger[batch] = n
            self.scheduled.pop(batch, None)
        for retry in change.retries:
            self.scheduled[retry.batch] = retry.items
        self.failed += [f.item for f in change.failed]
        self.total, self.items = change.total, change.items
        return self.snapshot()

    def snapshot(self) -> Snapshot:
        return replace(EMPTY, total=self.total, items=self.items, batches=len(self.ledger))


EMPTY = Snapshot(
    job="t", total=None, items=0, batches=0, bare_batches=0, end_batches=None, end_items=None,
    errors=0, layout=None, stopped_because=None, estimate=None, created_at=0.0, updated_at=0.0,
)  # fmt: skip
SUM = Sum()
job_ids = itertools.count(1)


def partial(batch: str, good: Sequence[int], failed: Sequence[int] = (), **kw: object) -> bytes:
    failures = (Failure("FileNotFoundError: x", "tb", tuple(failed)),) if failed else ()
    value = SUM.reduce(list(good)) if good else None
    record = Partial((batch,), len(good), value, failures, **kw)  # type: ignore[arg-type]
    return encode_result(record)


def run(ledger: MemoryLedger, bodies: Sequence[bytes]) -> Commit:
    fold = Fold(ledger, ledger.snapshot(), SUM.rereduce)
    for body in bodies:
        assert fold.stage(next(job_ids), body) is None
    change = fold.build()
    ledger.apply(change)
    return change


def test_failed_items_of_a_batch_become_its_retry_and_the_good_ones_count() -> None:
    ledger = MemoryLedger()
    change = run(ledger, [partial("s500-0", [1, 2, 4], [3], attempt=0, retry_delay=5)])
    assert ledger.total == 7 and ledger.items == 3
    assert [(r.batch, r.items, r.attempt, r.delay) for r in change.retries] == [
        ("s500-0~", (3,), 1, 5)
    ]
    run(ledger, [partial("s500-0~", [3])])
    assert ledger.total == 10 and ledger.items == 4 and not ledger.scheduled


def test_at_the_last_attempt_failed_items_are_kept_and_never_counted() -> None:
    ledger = MemoryLedger()
    change = run(ledger, [partial("s500-0", [1], [2, 3], attempt=2, final=True, host="h")])
    assert ledger.total == 1 and ledger.failed == [2, 3] and not change.retries
    assert {(f.batch, f.attempts, f.host) for f in change.failed} == {("s500-0", 3, "h")}


def test_a_batch_handed_out_twice_counts_each_item_once_whichever_copy_comes_first() -> None:
    """One copy failed item 3 (a retry was split off), the other succeeded whole: in either
    order, and with the retry's own duplicates, every item counts exactly once."""
    split = partial("s500-0", [1, 2], [3], attempt=0)
    whole = partial("s500-0", [1, 2, 3])
    retry = partial("s500-0~", [3])
    for order in itertools.permutations([split, whole]):
        ledger = MemoryLedger()
        run(ledger, [order[0]])
        run(ledger, [order[1], retry])
        run(ledger, [retry])  # a late duplicate of the retry
        assert ledger.total == 6 and ledger.items == 3, order


def test_a_retry_nobody_scheduled_is_not_applied() -> None:
    ledger = MemoryLedger()
    run(ledger, [partial("s500-7~", [99])])
    assert ledger.total is None and ledger.items == 0


def test_a_result_rereduce_cannot_fold_is_set_aside_and_the_rest_commit() -> None:
    ledger = MemoryLedger()
    bad = encode_result(Partial(("s500-1",), 1, "not a number"))
    change = run(ledger, [partial("s500-0", [5]), bad, partial("s500-2", [7])])
    assert ledger.total == 12
    assert len(change.buried) == 1 and "rereduce() cannot fold" in change.buried[0].reason
    assert "s500-1" not in ledger.ledger  # the real partial of s500-1 can still come


def test_a_total_that_is_not_json_is_refused_like_an_unfoldable_result() -> None:
    ledger = MemoryLedger()
    huge = encode_result(Partial(("s500-1",), 1, 1e308))
    change = run(ledger, [partial("s500-0", [5]), huge, huge.replace(b"s500-1", b"s500-2")])
    assert ledger.total == 5 + 1e308 and len(change.buried) == 1  # 2e308 is not JSON


def test_a_partial_with_no_good_items_folds_nothing() -> None:
    ledger = MemoryLedger()
    run(ledger, [partial("s500-0", [], [1, 2], attempt=0)])
    assert ledger.total is None and ledger.items == 0 and "s500-0~" in ledger.scheduled


def staging(jobs: int = 1, items: int = 10, batches: int = 1, end: bool = False) -> Staging:
    return Staging(jobs, items, batches, end)


def test_commit_policy_waits_for_the_interval_and_commits_an_end_at_once() -> None:
    snap = replace(EMPTY, items=10_000)
    assert not commit_due(staging(jobs=0), snap, 99.0, 2.0, caught_up=False)
    assert not commit_due(staging(), snap, 1.9, 2.0, caught_up=False)
    assert commit_due(staging(), snap, 2.0, 2.0, caught_up=False)
    assert commit_due(staging(end=True), snap, 0.0, 2.0, caught_up=False)


def test_commit_policy_commits_sooner_when_caught_up_and_when_the_job_is_done() -> None:
    snap = replace(EMPTY, items=10_000, batches=9, layout_batches=9, end_batches=10)
    assert commit_due(staging(), snap, 0.0, 2.0, caught_up=False)  # the last batch
    snap = replace(snap, end_batches=None)
    assert not commit_due(staging(), snap, 2.0 * CAUGHT_UP_SHARE * 0.9, 2.0, caught_up=True)
    assert commit_due(staging(), snap, 2.0 * CAUGHT_UP_SHARE, 2.0, caught_up=True)


def test_a_caught_up_reducer_near_the_end_looks_for_the_rest_soon() -> None:
    """Near the end, the last partials and the end record coming within the caught-up
    interval are seen within a few ms, not at the interval's end (which made every short run
    100 ms longer); before that the reducer sleeps out the interval, one wake-up each."""
    last, every, most = 10.0, 2.0, 200
    window = every * CAUGHT_UP_SHARE
    staged = (2, 1000)  # two results of 500 items each
    near, far = NEAR_END_JOBS * 500, NEAR_END_JOBS * 500 + 1
    # nothing staged, or behind: wait for the first result up to 1 s
    assert next_reserve((0, 0), 0, True, 3, last, every, last, most) == (0.0, 1, most)
    assert next_reserve(staged, 0, False, 3, last, every, last, most) == (0.0, 1, most)
    # caught up, far from the end (or no len()): the rest of the interval, then one wave
    for left in (far, None):
        got = next_reserve(staged, left, True, 0, last, every, last + 0.02, most)
        assert got == pytest.approx((window - 0.02, 0, most))
    # near the end: 5 ms, then 10, 20, ... a few jobs a look, never past the interval
    waits = [next_reserve(staged, near, True, n, last, every, last, most) for n in (0, 1, 2)]
    assert waits == [(CAUGHT_UP_LOOK_S * k, 0, CAUGHT_UP_MOST) for k in (1, 2, 4)]
    end = last + window
    got = next_reserve(staged, 0, True, 9, last, every, end - 0.001, most)
    assert got == pytest.approx((0.001, 0, CAUGHT_UP_MOST))
    assert next_reserve(staged, 0, True, 1, last, every, end + 5, most) == (0.0, 0, CAUGHT_UP_MOST)


def test_commit_policy_doubles_early_for_log_spaced_estimates() -> None:
    assert commit_due(staging(items=1000), replace(EMPTY, items=500), 0.0, 2.0, False)
    assert not commit_due(staging(items=999), replace(EMPTY, items=500), 0.0, 2.0, False)


def test_an_end_record_is_staged_for_the_commit() -> None:
    ledger = MemoryLedger()
    change = run(ledger, [encode_result(EndRecord(3, 30, "tag1", "s500"))])
    assert change.end == EndRecord(3, 30, "tag1", "s500")
    assert (change.layout, change.identity) == ("s500", "tag1")


def refused(ledger: MemoryLedger, body: bytes, snap: Snapshot | None = None) -> str:
    fold = Fold(ledger, snap or ledger.snapshot(), SUM.rereduce)
    reason = fold.stage(next(job_ids), body)
    assert reason is not None
    assert fold.job_count == 0 and fold.identity is None
    return reason


def test_an_end_record_without_a_layout_or_of_another_layout_is_refused() -> None:
    """A forged `{"type":"end","batches":0}` would otherwise complete a job at once."""
    ledger = MemoryLedger()
    assert "must name its batch layout" in refused(ledger, encode_result(EndRecord(0, 0)))
    snap = replace(ledger.snapshot(), layout="s500")
    other = encode_result(EndRecord(4, 40, None, "s100"))
    assert "another --batch-size" in refused(ledger, other, snap)


def test_records_of_another_run_or_version_are_refused_not_mixed_in() -> None:
    ledger = MemoryLedger()
    mine = encode_result(Partial(("s500-0",), 2, 3, job="tag-a"))
    theirs = encode_result(Partial(("s500-1",), 2, 30, job="tag-b"))
    change = run(ledger, [mine])
    assert change.identity == "tag-a"
    snap = replace(ledger.snapshot(), identity="tag-a")
    assert "another run or version" in refused(ledger, theirs, snap)
    end = encode_result(EndRecord(1, 2, "tag-b", "s500"))
    assert "another run or version" in refused(ledger, end, snap)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=8,
)
batch_ids = st.sampled_from(["s500-0", "s500-1", "s500-1~", "s100-0", "x-1", "i-ab", "q"])
records = st.one_of(
    st.builds(
        lambda b, n, v, job: encode_result(Partial((b,), n, v, job=job)),
        batch_ids,
        st.integers(0, 2**53 - 1),
        json_values,
        st.sampled_from([None, "tag-a", "tag-b"]),
    ),
    st.builds(
        lambda b, n, v: encode_result(
            Partial((b,), n, v, (Failure("E: x", "", (1,)),), attempt=1, final=True)
        ),
        batch_ids,
        st.integers(0, 10),
        json_values,
    ),
    st.builds(
        lambda n, i, layout: encode_result(EndRecord(n, i, "tag-a", layout)),
        st.integers(0, 2**53 - 1),
        st.integers(0, 2**53 - 1),
        st.sampled_from([None, "s500", "s100"]),
    ),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(records, max_size=12))
def test_nothing_that_decodes_can_stop_the_fold(bodies: list[bytes]) -> None:
    """Bodies that pass decoding but make no sense: each is staged or refused with a reason,
    and the commit it leads to is always one SQLite and JSON can hold."""
    ledger = MemoryLedger()
    for chunk in (bodies[: len(bodies) // 2], bodies[len(bodies) // 2 :]):
        fold = Fold(ledger, ledger.snapshot(), SUM.rereduce)
        for body in chunk:
            reason = fold.stage(next(job_ids), body)
            assert reason is None or reason
        change = fold.build()
        dumps(change.total)
        assert 0 <= change.items < 2**63
        staged = set(change.job_ids) | {b.job_id for b in change.buried}
        assert len(staged) == fold.job_count
        ledger.apply(change)
