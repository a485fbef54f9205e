"""Fields and GroupBy: each field or group folded by its own reducer, estimates keyed by name."""

from __future__ import annotations

import pytest

from beanmill.ending import check_until_field
from beanmill.errors import BeanmillError
from beanmill.jsontypes import JSON
from beanmill.reducers import Count, Distinct, Fields, GroupBy, Mean, Quantiles, Sum, Total


def test_fields_folds_each_field_and_keys_its_estimate_by_field() -> None:
    f = Fields(mean=Mean(), total=Total(), q=Quantiles(0.5, 0.9), big=Sum(), d=Distinct())
    f.population = 1000
    values: list[JSON] = [{"mean": x, "total": x, "q": x, "big": 1, "d": x % 3} for x in range(100)]
    total = f.rereduce([f.reduce(values[:30]), f.reduce(values[30:])])
    est = f.estimate(total)
    assert sorted(est) == ["d", "mean", "q.p50", "q.p90", "total"]  # Sum does not estimate
    mean, tot = est["mean"], est["total"]
    assert isinstance(mean, dict) and isinstance(tot, dict)
    assert mean["value"] == pytest.approx(49.5) and mean["population"] == 1000
    assert tot["value"] == pytest.approx(49_500)
    line = f.describe(total)
    assert line.startswith("mean: mean 50 ± 5 (n=100 of 1,000)") and "; total: total 49," in line
    assert "; big: sum 100; d: distinct ~3" in line and "\n" not in line
    assert f.interval(total) is None


def test_a_field_keeps_its_own_population() -> None:
    f = Fields(a=Mean(population=10), b=Mean())
    f.population = 1000
    assert isinstance(f.fields["a"], Mean) and f.fields["a"].population == 10
    assert isinstance(f.fields["b"], Mean) and f.fields["b"].population == 1000


@pytest.mark.parametrize("bad", [3, {"a": 1}, {"b": 2}])
def test_fields_refuses_values_without_its_fields(bad: JSON) -> None:
    with pytest.raises(ValueError):
        Fields(a=Sum(), b=Sum()).reduce([bad])


def test_fields_refuses_a_partial_of_other_fields() -> None:
    f = Fields(a=Sum())
    with pytest.raises(ValueError, match="not ours"):
        f.rereduce([f.reduce([{"a": 1}]), {"x": 1}])


def test_until_field_must_name_a_field() -> None:
    f = Fields(mean=Mean(), q=Quantiles(0.9))
    check_until_field(f, "mean")
    check_until_field(f, "q.p90")
    check_until_field(Mean(), None)
    with pytest.raises(BeanmillError, match="no such field; the spec has mean, q"):
        check_until_field(f, "maen")
    with pytest.raises(BeanmillError, match="not Fields"):
        check_until_field(Mean(), "mean")


def test_groupby_estimates_each_group_and_counts_the_others() -> None:
    g = GroupBy("type", Mean(), value_field="size", max_groups=2)
    values: list[JSON] = [{"type": t, "size": s} for t in "abcd" for s in range(10)]
    total = g.rereduce([g.reduce(values[:15]), g.reduce(values[15:])])
    assert g.estimate(total) == g.estimate(g.reduce(values))
    est = g.estimate(total)
    groups = est["groups"]
    assert isinstance(groups, dict) and len(groups) == 2
    assert est["other_groups"] == 2
    other = est["other"]
    assert isinstance(other, dict) and other["n"] == 20
    for e in groups.values():
        assert isinstance(e, dict) and e["n"] == 10 and e["value"] == pytest.approx(4.5)
    line = g.describe(total)
    assert line.startswith("by type: ") and "other (2 groups): mean 4.5" in line
    assert g.describe(None) == "by type: no values yet"


def test_groupby_of_fields_and_inside_fields() -> None:
    g = GroupBy("k", Fields(n=Count(), v=Mean()))
    f = Fields(by=g, all=Mean())
    values: list[JSON] = [{"k": i % 2, "n": 1, "v": i, "all": i, "by": None} for i in range(10)]
    rows: list[JSON] = [{**v, "by": v} for v in values if isinstance(v, dict)]
    est = f.estimate(f.reduce(rows))
    by = est["by"]
    assert isinstance(by, dict) and isinstance(by["groups"], dict)
    assert sorted(by["groups"]) == ["0", "1"] and by["other_groups"] == 0


def test_groupby_refuses_values_without_the_key() -> None:
    with pytest.raises(ValueError, match="no 'k'"):
        GroupBy("k", Sum()).reduce([{"x": 1}])
    with pytest.raises(ValueError, match="no 'v'"):
        GroupBy("k", Sum(), value_field="v").reduce([{"k": 1}])
