"""The producer's cursor keeper: a new job's cursor is on disk before any put, a resumed one
keeps its identity, and an advanced one is saved at most once per CURSOR_EVERY_S of the clock
passed in; the count check refuses an items() shorter than its len()."""

from __future__ import annotations

from pathlib import Path

import pytest

from beanmill.cursor import load_cursor
from beanmill.errors import CursorError, SpecError
from beanmill.identity import population_of
from beanmill.ids import Layout
from beanmill.jobspec import load_spec
from beanmill.jsontypes import Item
from beanmill.producer_cursor import CURSOR_EVERY_S, CursorKeeper
from beanmill.producer_end import check_count
from support import spec_ref

LAYOUT = Layout(batch_size=10)


def batch(seq: int) -> tuple[int, list[Item]]:
    """Batch `seq` of LAYOUT over range(): its ten items."""
    return seq, list(range(seq * 10, seq * 10 + 10))


def keeper(tmp_path: Path) -> CursorKeeper:
    return CursorKeeper(load_spec(spec_ref("sums:Squares")), LAYOUT, tmp_path / "c.json")


def test_a_new_jobs_cursor_is_saved_with_its_identity_before_any_put(tmp_path: Path) -> None:
    keep = keeper(tmp_path)
    cursor = keep.open(None, population_of(range(100)))
    assert cursor.identity and cursor.run and cursor.population_size == 100
    assert load_cursor(keep.state) == cursor
    assert keep.open(load_cursor(keep.state), population_of(range(100))) == cursor


def test_a_cursor_is_refused_when_the_population_changed(tmp_path: Path) -> None:
    keep = keeper(tmp_path)
    keep.open(None, population_of(range(100)))
    with pytest.raises(CursorError, match="100 items when this job started"):
        keep.open(load_cursor(keep.state), population_of(range(101)))


def test_the_cursor_advances_after_each_group_and_is_saved_once_per_interval(
    tmp_path: Path,
) -> None:
    keep = keeper(tmp_path)
    start = keep.open(None, population_of(range(100)))
    group = [batch(0), batch(1)]
    first = keep.after_put(start, group, 3, None, now=CURSOR_EVERY_S)
    assert (first.next_batch, first.items_put, first.jobs_put) == (2, 20, 3)
    assert load_cursor(keep.state) == first, "due: saved"
    second = keep.after_put(first, [batch(2)], 1, None, now=CURSOR_EVERY_S * 1.5)
    assert (second.next_batch, second.items_put, second.jobs_put) == (3, 30, 4)
    assert load_cursor(keep.state) == first, "not due yet: the saved cursor lags behind"
    keep.after_put(second, [batch(3)], 1, None, now=CURSOR_EVERY_S * 2)
    saved = load_cursor(keep.state)
    assert saved is not None and saved.next_batch == 4


def test_items_that_run_out_before_their_len_are_refused(tmp_path: Path) -> None:
    cursor = keeper(tmp_path).open(None, population_of(range(100)))
    check_count(range(0), cursor)  # none put, none promised
    with pytest.raises(SpecError, match="gave 0 items but its len\\(\\) says 100"):
        check_count(range(100), cursor)
