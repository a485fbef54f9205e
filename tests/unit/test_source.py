"""Cutting items into batches: every item exactly once, the same batches on every run, and a
resumed producer gets exactly the tail."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from beanmill import source
from beanmill.errors import SpecError
from beanmill.ids import Layout, bare_batch_id, layout_of
from beanmill.source import batches, check_item, population_size

PROPERTY = settings(max_examples=100, deadline=None)

KINDS: dict[str, Callable[[int], Iterable[int]]] = {
    "range": range,
    "list": lambda n: list(range(n)),
    "generator": lambda n: (i for i in range(n)),
}
kinds = st.sampled_from(sorted(KINDS))
sizes = st.integers(1, 10**6)
seeds = st.integers(-(2**63), 2**63)
#: What the CLI builds: no seed in sequential order, an integer seed (default 0) in random.
layouts = st.builds(Layout, sizes, st.just("sequential"), st.none()) | st.builds(
    Layout, sizes, st.just("random"), seeds
)


def random_order() -> None:
    pytest.importorskip("beanmill.permutation")


def flat(out: Iterable[tuple[int, list[int | str]]]) -> list[int | str]:
    return [item for _, chunk in out for item in chunk]


# -- batch IDs -----------------------------------------------------------------------------


@PROPERTY
@given(layout=layouts, seq=st.integers(0, 10**12))
def test_layout_of_a_batch_id_is_its_layout_tag(layout: Layout, seq: int) -> None:
    batch_id = layout.batch_id(seq)
    assert layout_of(batch_id) == layout.tag
    assert batch_id == f"{layout.tag}-{seq}"
    assert len(batch_id) <= 200


def test_batch_id_shapes() -> None:
    assert Layout(100).batch_id(7) == "s100-7"
    assert Layout(100, "random", 42).batch_id(7) == "r42.100-7"
    assert Layout(100, "random", -3).batch_id(0) == "r-3.100-0"


@PROPERTY
@given(a=layouts, b=layouts)
def test_two_layouts_share_a_tag_only_if_they_cut_items_the_same_way(a: Layout, b: Layout) -> None:
    if a.tag == b.tag:
        assert a.batch_size == b.batch_size and a.order == b.order
        assert a.order == "sequential" or (a.seed or 0) == (b.seed or 0)  # None orders as 0


def test_random_layout_without_a_seed_keeps_its_layout_guard() -> None:
    layout = Layout(10, "random", None)  # ProducerOptions(order="random") leaves seed None
    assert layout_of(layout.batch_id(0)) is not None


@pytest.mark.parametrize(
    "batch_id", [bare_batch_id("42"), "m-" + "0" * 32, "", "s10", "s10-", "s10-x", "-3", "x-1"]
)
def test_bare_malformed_and_odd_ids_have_no_layout(batch_id: str) -> None:
    assert layout_of(batch_id) is None


@pytest.mark.parametrize("batch_id", ["shard-7", "run-2", "report.csv-12"])
def test_foreign_batch_ids_have_no_layout(batch_id: str) -> None:
    assert layout_of(batch_id) is None


# -- every item exactly once ---------------------------------------------------------------


@PROPERTY
@given(n=st.integers(0, 400), size=st.integers(1, 50), kind=kinds)
def test_sequential_batches_cover_every_item_once_in_order(n: int, size: int, kind: str) -> None:
    out = list(batches(KINDS[kind](n), Layout(size)))
    assert flat(out) == list(range(n))
    assert [seq for seq, _ in out] == list(range(len(out)))
    assert all(len(chunk) == size for _, chunk in out[:-1])
    assert all(1 <= len(chunk) <= size for _, chunk in out)


@PROPERTY
@given(n=st.integers(0, 400), size=st.integers(1, 50), seed=st.integers(0, 2**64), kind=kinds)
def test_random_batches_cover_every_item_once(n: int, size: int, seed: int, kind: str) -> None:
    random_order()
    layout = Layout(size, "random", seed)
    with mock.patch.object(source, "SHUFFLE_BUFFER", 7):  # stream through a small buffer
        out = list(batches(KINDS[kind](n), layout))
        again = list(batches(KINDS[kind](n), layout))
    assert sorted(flat(out)) == list(range(n))
    assert out == again  # the same batches on every run
    assert [seq for seq, _ in out] == list(range(len(out)))
    assert all(len(chunk) == size for _, chunk in out[:-1])


def test_random_order_depends_on_the_seed_and_is_not_sequential() -> None:
    random_order()
    one = flat(batches(range(1000), Layout(10, "random", 1)))
    two = flat(batches(range(1000), Layout(10, "random", 2)))
    assert one != two
    assert one != list(range(1000))


@PROPERTY
@given(
    n=st.integers(0, 300),
    size=st.integers(1, 40),
    k=st.integers(0, 20),
    kind=kinds,
    order=st.sampled_from(["sequential", "random"]),
)
def test_resuming_at_batch_k_yields_exactly_the_tail(
    n: int, size: int, k: int, kind: str, order: str
) -> None:
    if order == "random":
        random_order()
    layout = Layout(size, order, 99)
    with mock.patch.object(source, "SHUFFLE_BUFFER", 5):
        full = list(batches(KINDS[kind](n), layout))
        tail = list(batches(KINDS[kind](n), layout, start_batch=k))
    assert tail == full[k:]


@pytest.mark.parametrize("order", ["sequential", "random"])
def test_resuming_deep_into_a_huge_range_is_immediate(order: str) -> None:
    if order == "random":
        random_order()
    n, size, k = 10**12, 1000, 10**8
    started = time.monotonic()
    seq, chunk = next(batches(range(n), Layout(size, order, 5), start_batch=k))
    assert time.monotonic() - started < 1.0
    assert seq == k and len(chunk) == size and len(set(chunk)) == size
    if order == "sequential":
        assert chunk == list(range(k * size, (k + 1) * size))


def test_mixed_str_and_int_items_pass_through_unchanged() -> None:
    items: list[int | str] = ["a", 1, "", "\u2603", -5, 10**30]
    assert flat(batches(items, Layout(4))) == items


@pytest.mark.parametrize("bad", [1.5, None, True, False, b"bytes", (1,), [1], {"id": 1}], ids=repr)
def test_item_that_is_not_str_or_int_raises_spec_error(bad: object) -> None:
    with pytest.raises(SpecError, match="must be str or int"):
        check_item(bad)
    with pytest.raises(SpecError, match=type(bad).__name__):
        list(batches(["ok", bad], Layout(10)))  # type: ignore[list-item]


def test_population_size_is_known_only_for_sequences() -> None:
    assert population_size(range(7)) == 7
    assert population_size(["a", "b"]) == 2
    assert population_size(i for i in range(7)) is None


@PROPERTY
@given(
    start=st.integers(-50, 50),
    stop=st.integers(-50, 400),
    step=st.integers(1, 4),
    size=st.integers(1, 50),
    k=st.integers(0, 10),
)
def test_a_range_is_cut_exactly_as_the_same_items_in_a_list(
    start: int, stop: int, step: int, size: int, k: int
) -> None:
    """Ranges take a sliced fast path; it must give the general path's batches."""
    items = range(start, stop, step)
    assert list(batches(items, Layout(size), k)) == list(batches(list(items), Layout(size), k))
