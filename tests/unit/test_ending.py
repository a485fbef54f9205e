"""The stop rule: one estimate or several fields, --until-field, and the skewness minimum n."""

from __future__ import annotations

from beanmill.ending import (
    MIN_ITEMS_FOR_CI,
    SKEW_FACTOR,
    EndConditions,
    min_items_to_stop,
    stop_reason,
    stop_targets,
)
from beanmill.jsontypes import JSON

REL = EndConditions(until_rel_ci=0.01)


def est(value: float, half: float, n: int = 10_000, skew: float | None = 0.0) -> dict[str, JSON]:
    return {"value": value, "ci95": [value - half, value + half], "n": n, "skewness": skew}


def test_a_single_estimate_stops_on_its_relative_half_width() -> None:
    assert stop_reason(REL, 10_000, est(100, 2)) is None
    assert stop_reason(REL, 10_000, est(100, 0.9)) == (
        "95% interval relative half-width 0.009 <= 0.01"
    )
    assert stop_reason(EndConditions(until_ci=1), 10_000, est(100, 0.9)) == (
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
    only_mean = EndConditions(until_rel_ci=0.01, until_field="mean")
    assert stop_reason(only_mean, 10_000, fields) == (
        "95% interval relative half-width 0.005 <= 0.01 (mean)"
    )
    assert stop_reason(EndConditions(until_rel_ci=0.01, until_field="nope"), 10_000, fields) is None


def test_sketch_bounds_and_groups_are_not_stop_targets() -> None:
    fields: dict[str, JSON] = {
        "mean": est(100, 0.5),
        "d": {"value": 10.0, "sketch_ci95": [9.0, 11.0], "n": 10_000},
        "g": {"groups": {"a": est(1, 1)}, "other": None, "other_groups": 0},
    }
    assert stop_targets(fields).keys() == {"mean"}
    assert stop_reason(REL, 10_000, fields) is not None


def test_skewed_values_wait_for_the_skewness_minimum_n() -> None:
    assert min_items_to_stop(est(1, 0, skew=None)) == MIN_ITEMS_FOR_CI
    assert min_items_to_stop(est(1, 0, skew=0.1)) == MIN_ITEMS_FOR_CI
    assert min_items_to_stop(est(1, 0, skew=-10)) == SKEW_FACTOR * 100 == 2_500
    assert stop_reason(REL, 2_000, est(100, 0.5, n=2_000, skew=10)) is None
    assert stop_reason(REL, 20_000, est(100, 0.5, n=20_000, skew=10)) is not None


def test_max_items_and_no_estimate() -> None:
    assert stop_reason(EndConditions(max_items=10), 10, None) == "max items reached (10 >= 10)"
    assert stop_reason(REL, 10_000, None) is None
    assert stop_reason(EndConditions(), 10_000, est(100, 0.1)) is None
    assert stop_reason(REL, 10, est(100, 0.1)) is None
