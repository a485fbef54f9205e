"""Quantile, Quantiles and Distinct: their sketches' accuracy, intervals and bad states."""

from __future__ import annotations

import base64
import random
import statistics

import pytest

from beanmill.jsontypes import JSON
from beanmill.reducers import Distinct, Quantile, Quantiles
from beanmill.reducers._sketches import distinct_key


def merged(reducer: Quantiles | Distinct, xs: list[JSON], batch: int = 500) -> JSON:
    """Folded as the consumers and the reducer do: a partial per batch, then a running total."""
    total: JSON = None
    for i in range(0, len(xs), batch):
        total = reducer.rereduce([total, reducer.reduce(xs[i : i + batch])])
    return total


def test_a_small_sketch_is_exact_and_its_interval_is_an_order_statistic_one() -> None:
    xs: list[JSON] = [float(i) for i in range(1, 101)]
    q = Quantile(0.5)
    est = q.estimate(q.reduce(xs))
    assert est["value"] == 50.0 and est["rank_error"] == 0.0 and est["n"] == 100
    assert est["ci95"] == [40.0, 61.0]  # ranks 0.5 ± (1.96·0.05 + 0.01)
    assert q.describe(q.reduce(xs)) == "p50 50 [40, 61] (n=100)"
    assert q.describe(None) == "p50: no values yet"
    assert q.estimate(None)["value"] is None


def test_a_census_gives_the_exact_quantile_with_zero_width() -> None:
    xs: list[JSON] = [float(i) for i in range(1, 101)]
    est = Quantile(0.9, population=100).estimate(Quantile(0.9).reduce(xs))
    assert est["value"] == 90.0 and est["ci95"] == [90.0, 90.0]


def test_a_compacted_sketch_widens_its_interval_by_the_stated_rank_error() -> None:
    rng = random.Random(1)
    xs: list[JSON] = [rng.lognormvariate(0, 1.5) for _ in range(50_000)]
    q = Quantiles(0.5, 0.9, k=200)
    total = merged(q, xs)
    est = q.estimate(total)
    truth = statistics.quantiles([float(x) for x in xs if isinstance(x, float)], n=10)
    for name, true_value in (("p50", truth[4]), ("p90", truth[8])):
        e = est[name]
        assert isinstance(e, dict) and isinstance(e["ci95"], list)
        assert e["rank_error"] == pytest.approx(0.0133, abs=0.0005)
        lo, hi = e["ci95"]
        assert isinstance(lo, float) and isinstance(hi, float)
        assert lo <= true_value <= hi
    assert q.describe(total).startswith("p50 ") and ", p90 " in q.describe(total)


def test_quantile_interval_covers_the_population_quantile() -> None:
    """Exponential(1): the population median is ln 2; 200 samples of 400 values."""
    hits = 0
    for seed in range(200):
        rng = random.Random(seed)
        xs: list[JSON] = [rng.expovariate(1.0) for _ in range(400)]
        ci = Quantile(0.5).interval(merged(Quantile(0.5), xs, batch=100))
        assert ci is not None
        hits += ci[0] <= 0.6931471805599453 <= ci[1]
    assert 0.93 <= hits / 200 <= 1.0


def test_distinct_counts_within_its_stated_error() -> None:
    d = Distinct()
    xs: list[JSON] = [i % 20_000 for i in range(60_000)]
    est = d.estimate(merged(d, xs))
    assert est["n"] == 60_000 and est["rel_error"] == pytest.approx(0.01625)
    value, bounds = est["value"], est["sketch_ci95"]
    assert isinstance(value, float) and abs(value / 20_000 - 1) < 3 * 0.01625
    assert isinstance(bounds, list) and isinstance(bounds[0], float)
    assert isinstance(bounds[1], float) and bounds[0] <= 20_000 <= bounds[1]
    assert d.describe(d.reduce(["a", "b", "a"])) == "distinct ~2 [2, 2] (n=3)"
    assert d.describe(None) == "distinct: no values yet"


def test_distinct_counts_one_and_one_point_zero_as_one_value() -> None:
    assert distinct_key(1.0) == distinct_key(1) == "1"
    assert distinct_key({"b": 1, "a": [2.5]}) == '{"a":[2.5],"b":1}'


@pytest.mark.parametrize(
    "bad",
    [{"n": 1, "kll": "not base64!"}, {"n": 1, "kll": base64.b64encode(b"junk").decode()}, [1]],
)
def test_a_bad_sketch_state_is_a_value_error(bad: JSON) -> None:
    q = Quantile(0.5)
    with pytest.raises(ValueError):
        q.rereduce([q.reduce([1.0]), bad])


def test_sketch_arguments_are_checked() -> None:
    with pytest.raises(ValueError):
        Quantile(1.5)
    with pytest.raises(ValueError):
        Quantiles()
    with pytest.raises(ValueError):
        Distinct(lg_k=30)
    with pytest.raises(ValueError, match="finite number"):
        Quantile(0.5).reduce([float("nan")])
