"""The stop rule: one estimate or several fields, --until-field, the skewness minimum n and
--min-items-to-stop."""

from __future__ import annotations

from beanmill.ending import (
    MIN_ITEMS_FOR_CI,
    MIN_ITEMS_TO_STOP,
    SKEW_FACTOR,
    EndConditions,
    StopRule,
    held_back,
    skew_min_items,
    stop_reason,
    stop_targets,
)
from beanmill.jsontypes import JSON

#: These tests are about the rest of the rule; --min-items-to-stop has its own below.
REL = EndConditions(until_rel_ci=0.01, min_items_to_stop=0)


def est(value: float, half: float, n: int = 10_000, skew: float | None = 0.0) -> dict[str, JSON]:
    return {"value": value, "ci95": [value - half, value + half], "n": n, "skewness": skew}


def test_a_single_estimate_stops_on_its_relative_half_width() -> None:
    assert stop_reason(REL, 10_000, est(100, 2)) is None
    assert stop_reason(REL, 10_000, est(100, 0.9)) == (
        "95% interval relative half-width 0.009 <= 0.01"
    )
    assert stop_reason(EndConditions(until_ci=1, min_items_to_stop=0), 10_000, est(100, 0.9)) == (
        "95% interval half-width 0.9 <= 1"
    )


def test_an_estimate_written_before_value_existed_still_stops() -> None:
    old: dict[str, JSON] = {"mean": 100.0, "ci95": [99.5, 100.5], "n": 500}
    assert stop_reason(REL, 500, old) is not None


def test_every_estimating_field_must_meet_the_condition() -> None:
    fields: dict[str, JSON] = {"mean": est(100, 0.5), "p90": est(200, 5)}
    assert stop_targets(fields).keys() == {"mean", "p90"}
    assert stop_reason(REL, 10_000, fields) is None
    fields["p90"] = est(200, 1.5)
    assert stop_reason(REL, 10_000, fields) == (
        "95% interval relative half-width 0.0075 <= 0.01 (mean, p90)"
    )


def test_until_field_picks_one_field() -> None:
    fields: dict[str, JSON] = {"mean": est(100, 0.5), "p90": est(200, 50)}
    only_mean = EndConditions(until_rel_ci=0.01, until_field="mean", min_items_to_stop=0)
    assert stop_reason(only_mean, 10_000, fields) == (
        "95% interval relative half-width 0.005 <= 0.01 (mean)"
    )
    nope = EndConditions(until_rel_ci=0.01, until_field="nope", min_items_to_stop=0)
    assert stop_reason(nope, 10_000, fields) is None


def test_sketch_bounds_and_groups_are_not_stop_targets() -> None:
    fields: dict[str, JSON] = {
        "mean": est(100, 0.5),
        "d": {"value": 10.0, "sketch_ci95": [9.0, 11.0], "n": 10_000},
        "g": {"groups": {"a": est(1, 1)}, "other": None, "other_groups": 0},
    }
    assert stop_targets(fields).keys() == {"mean"}
    assert stop_reason(REL, 10_000, fields) is not None


def test_skewed_values_wait_for_the_skewness_minimum_n() -> None:
    assert skew_min_items(est(1, 0, skew=None)) == MIN_ITEMS_FOR_CI
    assert skew_min_items(est(1, 0, skew=0.1)) == MIN_ITEMS_FOR_CI
    assert skew_min_items(est(1, 0, skew=-10)) == SKEW_FACTOR * 100 == 2_500
    assert stop_reason(REL, 2_000, est(100, 0.5, n=2_000, skew=10)) is None
    assert stop_reason(REL, 20_000, est(100, 0.5, n=20_000, skew=10)) is not None


def test_max_items_and_no_estimate() -> None:
    assert stop_reason(EndConditions(max_items=10), 10, None) == "max items reached (10 >= 10)"
    assert stop_reason(REL, 10_000, None) is None
    assert stop_reason(EndConditions(), 10_000, est(100, 0.1)) is None
    assert stop_reason(REL, 10, est(100, 0.1)) is None


def test_an_interval_met_before_min_items_to_stop_is_held_back() -> None:
    conds = EndConditions(until_rel_ci=0.01, min_items_to_stop=5_000)
    tight = est(100, 0.5, n=4_999)
    assert stop_reason(conds, 4_999, tight) is None
    assert held_back(conds, 4_999, tight) == (
        "stop held back to --min-items-to-stop 5,000: "
        "95% interval relative half-width 0.005 <= 0.01 at 4,999 items"
    )
    assert stop_reason(conds, 5_000, est(100, 0.5, n=5_000)) is not None
    assert held_back(conds, 5_000, est(100, 0.5, n=5_000)) is None
    assert held_back(conds, 4_999, est(100, 2, n=4_999)) is None, "nothing met, nothing held"


def test_min_items_to_stop_holds_back_intervals_only() -> None:
    assert EndConditions().min_items_to_stop == MIN_ITEMS_TO_STOP
    conds = EndConditions(max_items=100, until_rel_ci=0.01, min_items_to_stop=5_000)
    assert stop_reason(conds, 100, est(100, 0.5, n=100)) == "max items reached (100 >= 100)"
    assert stop_reason(EndConditions(), MIN_ITEMS_TO_STOP - 1, est(100, 0.5)) is None


def test_the_reducer_says_a_held_back_stop_once() -> None:
    rule = StopRule(EndConditions(until_rel_ci=0.01, min_items_to_stop=5_000))
    assert rule.reason(1_000, est(100, 5, n=1_000)) is None
    assert rule.take_note() == "", "nothing held yet"
    assert rule.reason(2_000, est(100, 0.5, n=2_000)) is None
    assert rule.reason(3_000, est(100, 0.4, n=3_000)) is None
    note = rule.take_note()
    assert note.startswith(" (stop held back to --min-items-to-stop 5,000: 95% interval")
    assert note.endswith("at 2,000 items)")
    assert rule.take_note() == ""
    assert rule.reason(4_000, est(100, 0.4, n=4_000)) is None
    assert rule.take_note() == "", "said once"
    assert rule.reason(5_000, est(100, 0.4, n=5_000)) is not None
