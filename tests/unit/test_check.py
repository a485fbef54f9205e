"""`beanmill check`: a dry run that fails a spec a real run would fail on, and passes a good one."""

from __future__ import annotations

import subprocess
import sys

import pytest

from beanmill import exitcodes
from beanmill.check import CheckReport, check_ref, quick_check, run_check
from beanmill.check_agree import same
from beanmill.errors import CheckFailed
from beanmill.jobspec import load_spec
from beanmill.jsontypes import JSON
from support import SPECS, spec_ref

SPEC_FILE = SPECS / "check_specs.py"
SQUARES_0_TO_199 = 199 * 200 * 399 // 6


def check(name: str, sample: int = 200) -> CheckReport:
    return check_ref(spec_ref(f"check_specs:{name}"), sample)


def line_of(text: str) -> str:
    """`check_specs.py:N` of the line holding `text`, as a problem shows it."""
    lines = SPEC_FILE.read_text().splitlines()
    return f"check_specs.py:{next(i for i, x in enumerate(lines, 1) if text in x)}"


def test_a_good_spec_passes_with_its_rate_and_estimate() -> None:
    report = check("Good")
    assert report.ok, report.problems
    assert report.verdict == "check: ok"
    assert report.sampled == 200
    assert report.population == 1000
    assert report.items_per_s is not None and report.items_per_s > 0
    assert any(x.startswith("estimate: ~") and "for 1,000 items at" in x for x in report.lines)
    assert "reduce(): strict JSON; rereduce() agrees with it on 8 random splits" in report.lines


def test_a_rereduce_that_folds_otherwise_than_reduce_fails_showing_both_values() -> None:
    report = check("MaxRereduce")
    assert not report.ok
    problem = report.problems[0]
    assert problem.startswith("rereduce disagrees with reduce: rereduce([reduce(A), reduce(B)]) = ")
    assert f"but reduce(A+B) = {SQUARES_0_TO_199} on a split of 200 sampled items into " in problem
    assert problem.endswith("rereduce must fold partials the way reduce folds values")
    assert report.verdict == f"check: FAILED: {problem}"


def test_float_totals_agree_to_a_relative_tolerance_not_bit_for_bit() -> None:
    assert check("FloatMean").ok
    assert same(0.1 + 0.2, 0.3) and same({"m": [1.0, 2]}, {"m": [1.0 + 1e-14, 2.0]})
    assert not same(1.0, 1.0001) and not same(True, 1) and not same([1], [1, 1])
    assert not same({"a": 1}, {"b": 1}) and not same("1", 1) and same(None, None)


def test_a_map_value_of_nan_fails_naming_the_item() -> None:
    report = check("NanMap")
    assert not report.ok
    problem = report.problems[0]
    assert problem.startswith("map() returned a value that is not strict JSON for item 5: ")
    assert "nan" in problem


def test_a_map_value_that_is_a_set_fails() -> None:
    report = check("SetMap")
    assert not report.ok
    assert "not strict JSON for item 0: Object of type set" in report.problems[0]
    assert "(and 199 more items)" in report.problems[0]


def test_a_map_that_raises_on_one_item_passes_and_reports_it() -> None:
    report = check("OneBadItem")
    assert report.ok, report.problems
    assert report.failed_items == 1
    (failure,) = report.map_failures
    assert failure.item == 7 and failure.error == "ValueError: item 7 is cursed"
    assert failure.where.endswith(line_of('raise ValueError(f"item {item} is cursed")'))
    assert "map(): raised on 1 of 200 sampled items (a run retries, then buries them):" in (
        report.lines
    )
    assert "map(): 199 of 200 sampled items mapped in" in report.lines[0]


def test_a_map_that_raises_on_every_item_fails() -> None:
    report = check("AllBad", sample=50)
    assert not report.ok
    assert report.problems[0].startswith(
        "map() raised on all 50 sampled items; the first: item 0: KeyError: 0 at "
    )
    assert report.problems[0].endswith(line_of("raise KeyError(item)"))
    assert len(report.map_failures) == 3 and report.failed_items == 50


def test_items_that_raise_fail_the_check_naming_items_and_the_line() -> None:
    report = check("BrokenItems")
    assert not report.ok
    assert report.problems[0].startswith(
        "items() raised RuntimeError: the listing service went away at "
    )
    assert report.problems[0].endswith(line_of('raise RuntimeError("the listing service'))


def test_endless_items_are_sampled_without_listing_them_all() -> None:
    report = check("Endless")
    assert report.ok, report.problems
    assert report.sampled == 200 and report.population is None
    assert "estimate: items() has no len(), so the run time is not estimated" in report.lines


def test_a_reduce_that_raises_fails_naming_reduce_and_the_line() -> None:
    report = check("BrokenReduce")
    assert not report.ok
    assert report.problems[0].startswith("reduce() raised ZeroDivisionError: ")
    assert report.problems[0].endswith(line_of("return sum(values) // 0"))


def test_setup_runs_in_the_map_thread_as_in_a_consumer_with_one_thread() -> None:
    """sqlite3 refuses a connection from another thread: a connection opened in setup() (the
    README's advice) or in thread_setup() is usable in map()."""
    report = check("SqliteInSetup", sample=10)
    assert report.ok, report.problems
    assert report.failed_items == 0
    spec = load_spec(spec_ref("check_specs:SqliteInThreadSetup"))
    report = quick_check(spec)
    assert report.ok, report.problems
    assert report.sampled == 20
    assert spec.obj.map_threads == {spec.obj.setup_thread}


def test_a_spec_that_does_not_load_fails_the_check() -> None:
    report = check("Nope")
    assert not report.ok
    assert report.problems[0].endswith("has no 'Nope'")


def test_quick_check_raises_check_failed_only_for_a_failing_spec() -> None:
    quick_check(load_spec(spec_ref("check_specs:Good"))).raise_if_failed()
    with pytest.raises(CheckFailed, match="rereduce disagrees with reduce"):
        quick_check(load_spec(spec_ref("check_specs:MaxRereduce"))).raise_if_failed()


@pytest.mark.parametrize(
    ("name", "code", "last"),
    [
        ("Good", 0, "check: ok"),
        ("MaxRereduce", 4, "check: FAILED: rereduce disagrees with reduce: "),
    ],
)
def test_the_check_command_exits_0_or_4_with_the_verdict_last(
    name: str, code: int, last: str
) -> None:
    cmd = [sys.executable, "-m", "beanmill", "check", spec_ref(f"check_specs:{name}")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == code, done.stderr
    assert done.stdout.splitlines()[-1].startswith(last)
    assert code in (exitcodes.OK, exitcodes.USER_CODE)


def test_sketch_reducers_pass_the_check_though_their_bytes_depend_on_merge_order() -> None:
    """Distinct's HLL bytes differ between reduce(A+B) and rereduce of the parts, and so does
    GroupBy's count of other groups: the check compares what they estimate instead."""
    from beanmill.jobspec import Spec
    from beanmill.reducers import Distinct, GroupBy, Mean

    class Distincts:
        name = "distincts"
        reducer = Distinct()

        def items(self) -> range:
            return range(3000)

        def map(self, item: int) -> int:
            return item % 777

    class Groups(Distincts):
        name = "groups"
        reducer = GroupBy("k", Mean(), value_field="v", max_groups=5)  # type: ignore[assignment]

        def map(self, item: int) -> dict[str, JSON]:  # type: ignore[override]
            return {"k": str(item % 13), "v": item}

    for obj in (Distincts(), Groups()):
        report = run_check(Spec(obj, f"test:{obj.name}"), sample=2000)
        assert report.ok, report.problems


def test_a_distinct_count_far_off_is_not_equivalent() -> None:
    from beanmill.reducers import Distinct

    d = Distinct()
    assert d.equivalent(d.reduce(list(range(500))), d.reduce(list(range(500))))
    assert not d.equivalent(d.reduce(list(range(500))), d.reduce(list(range(700))))
