"""The ready-made reducers: the rereduce law for any split and order, identities, JSON-ness,
and the statistics behind Mean and Proportion."""

from __future__ import annotations

import itertools
import json
import math
import random
import statistics
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from beanmill.jobspec import Monoid
from beanmill.jsontypes import JSON
from beanmill.reducers import (
    Count,
    Counter,
    Distinct,
    Fields,
    GroupBy,
    Max,
    Mean,
    Min,
    Proportion,
    Quantile,
    Quantiles,
    Sum,
    TopK,
    Total,
)

PROPERTY = settings(max_examples=100, deadline=None)

finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
numbers = st.one_of(st.integers(-50, 50), finite)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | finite | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=3,
)
scores = st.one_of(st.integers(-3, 3), st.sampled_from([0.5, 1.0, -0.0, 0.0, 2.0]))
payloads = st.one_of(
    st.none(), st.integers(-2, 2), st.sampled_from(["a", "b"]), st.lists(st.integers(0, 1))
)
topk_values = st.one_of(scores, st.tuples(scores, payloads).map(list))


def wire(x: JSON) -> JSON:
    """What a partial looks like after the tube or the checkpoint."""
    out: JSON = json.loads(json.dumps(x, allow_nan=False))
    return out


def same(got: JSON, want: JSON, values: Sequence[JSON]) -> None:
    assert got == want


def same_json(got: JSON, want: JSON, values: Sequence[JSON]) -> None:
    """Equal down to int-versus-float, which == alone would not notice."""
    assert json.dumps(got) == json.dumps(want)


def close_sum(got: JSON, want: JSON, values: Sequence[JSON]) -> None:
    scale = sum(abs(float(v)) for v in values if isinstance(v, int | float))
    assert got == pytest.approx(want, rel=1e-9, abs=1e-12 * scale + 1e-12)


def close_mean(got: JSON, want: JSON, values: Sequence[JSON]) -> None:
    assert isinstance(got, dict) and isinstance(want, dict)
    xs = [float(v) for v in values if isinstance(v, int | float)]
    assert got["n"] == want["n"] == len(xs)
    big = max((abs(x) for x in xs), default=0.0)
    squares = sum(x * x for x in xs)
    assert got["mean"] == pytest.approx(want["mean"], rel=1e-9, abs=1e-9 * big + 1e-12)
    assert got["m2"] == pytest.approx(want["m2"], rel=1e-9, abs=1e-9 * squares + 1e-12)
    cubes = sum(abs(x) ** 3 for x in xs)
    assert got["m3"] == pytest.approx(want["m3"], rel=1e-7, abs=1e-7 * cubes + 1e-12)
    if "sum" in want:
        assert got["sum"] == pytest.approx(want["sum"], rel=1e-9, abs=1e-9 * big * len(xs) + 1e-12)


def same_estimate(reducer: Monoid) -> Check:
    """Sketches: equal answers (the bytes may differ by merge order); exact below k values."""

    def check(got: JSON, want: JSON, values: Sequence[JSON]) -> None:
        assert isinstance(reducer, Quantiles | Distinct | GroupBy)
        assert reducer.estimate(got) == reducer.estimate(want)
        assert reducer.describe(got) == reducer.describe(want)

    return check


FIELDS = Fields(s=Sum(), m=Mean())
GROUPS = GroupBy("k", Sum(), value_field="v", max_groups=3)
GROUPS1 = GroupBy("k", Count(), max_groups=1)


def close_fields(got: JSON, want: JSON, values: Sequence[JSON]) -> None:
    assert isinstance(got, dict) and isinstance(want, dict)
    assert json.dumps(got["s"]) == json.dumps(want["s"])
    close_mean(got["m"], want["m"], [v["m"] for v in values if isinstance(v, dict)])


Check = Callable[[JSON, JSON, Sequence[JSON]], None]
CASES: list[tuple[Monoid, st.SearchStrategy[Any], Check]] = [
    (Sum(), st.integers(-(10**15), 10**15), same_json),
    (Sum(), finite, close_sum),
    (Count(), json_values, same_json),
    (Min(), numbers, same),
    (Max(), numbers, same),
    (Counter(top=3), st.one_of(st.integers(-3, 3), st.sampled_from("abc"), st.booleans()), same),
    (TopK(3), topk_values, same_json),
    (TopK(1), topk_values, same_json),
    (Mean(), finite, close_mean),
    (Total(), finite, close_mean),
    (Total(), st.integers(-(10**6), 10**6), close_mean),
    (Proportion(), st.one_of(st.booleans(), st.sampled_from([0, 1, 0.0, 1.0])), same_json),
    (Quantile(0.9), finite, same_estimate(Quantile(0.9))),
    (Quantiles(0, 0.5, 1, k=64), numbers, same_estimate(Quantiles(0, 0.5, 1, k=64))),
    (Distinct(), json_values, same_estimate(Distinct())),
    (FIELDS, st.fixed_dictionaries({"s": st.integers(-50, 50), "m": finite}), close_fields),
    (
        GROUPS,
        st.fixed_dictionaries({"k": st.sampled_from("abcde"), "v": st.integers(-9, 9)}),
        same_estimate(GROUPS),  # the count of other groups is an HLL: bytes vary by order
    ),
    (GROUPS1, st.fixed_dictionaries({"k": st.integers(0, 9)}), same_estimate(GROUPS1)),
]
IDS = ["sum-int", "sum-float", "count", "min", "max", "counter", "top3", "top1", "mean"]
IDS += ["total", "total-int", "prop", "p90", "quantiles", "distinct", "fields", "groupby"]
IDS += ["groupby-1"]


@pytest.mark.parametrize(("reducer", "values", "check"), CASES, ids=IDS)
@PROPERTY
@given(data=st.data())
def test_rereduce_of_any_split_in_any_order_equals_reduce_of_all(
    reducer: Monoid, values: st.SearchStrategy[Any], check: Check, data: st.DataObject
) -> None:
    xs: list[JSON] = data.draw(st.lists(values, max_size=40), label="values")
    cuts = sorted(data.draw(st.lists(st.integers(0, len(xs)), max_size=6), label="cuts"))
    bounds = [0, *cuts, len(xs)]
    chunks = [xs[a:b] for a, b in itertools.pairwise(bounds)]
    order = data.draw(st.permutations(range(len(chunks))), label="order")
    partials = [wire(reducer.reduce(chunks[i])) for i in order]
    whole = reducer.reduce(xs)
    check(reducer.rereduce(partials), whole, xs)
    # The reducer role folds its running total in with each new partial: the same law.
    running = reducer.rereduce([])
    for p in partials:
        running = wire(reducer.rereduce([running, p]))
    check(running, whole, xs)


@pytest.mark.parametrize(("reducer", "values", "check"), CASES, ids=IDS)
@PROPERTY
@given(data=st.data())
def test_identity_and_json_round_trip(
    reducer: Monoid, values: st.SearchStrategy[Any], check: Check, data: st.DataObject
) -> None:
    xs: list[JSON] = data.draw(st.lists(values, max_size=20))
    partial = reducer.reduce(xs)
    empty = reducer.reduce([])
    assert reducer.rereduce([]) == empty
    assert reducer.rereduce([partial, empty]) == partial
    assert reducer.rereduce([empty, partial]) == partial
    assert reducer.rereduce([None, partial]) == partial  # the checkpoint's first total
    for x in (partial, empty, reducer.rereduce([partial, partial])):
        assert wire(x) == x
        assert json.dumps(wire(x)) == json.dumps(x)
    assert isinstance(reducer.describe(partial), str)
    assert "\n" not in reducer.describe(partial)


@pytest.mark.parametrize("reducer", [c[0] for c in CASES], ids=IDS)
def test_satisfies_the_protocol_and_describes_a_fresh_checkpoint(reducer: Monoid) -> None:
    assert isinstance(reducer, Monoid)
    assert reducer.describe(None) == reducer.describe(reducer.reduce([]))


@pytest.mark.parametrize("bad", ["1", None, [1], float("nan"), float("inf")])
def test_numeric_reducers_refuse_what_the_wire_could_not_carry(bad: JSON) -> None:
    for reducer in (Sum(), Min(), Max(), Mean(), TopK(2)):
        with pytest.raises(ValueError, match="finite number"):
            reducer.reduce([1, bad])


def test_simple_values_and_summaries() -> None:
    assert Sum().reduce([1, 2, 3]) == 6 and isinstance(Sum().reduce([1, 2]), int)
    assert Sum().describe(1234567) == "sum 1,234,567"
    assert Count().rereduce([Count().reduce(["a", None, {}]), 4]) == 7
    assert Min().reduce([3, -1.5, 2]) == -1.5 and Max().reduce([3, -1.5, 2]) == 3
    assert Min().reduce([]) is None and Max().rereduce([None, None]) is None
    assert Max().describe(2.5) == "max 2.5"


def test_counter_keys_and_top() -> None:
    c = Counter(top=2)
    total = c.rereduce([c.reduce(["b", 1, 1, True]), c.reduce(["a", "b", None, 1.5])])
    assert total == {"b": 2, "1": 2, "True": 1, "a": 1, "None": 1, "1.5": 1}
    assert c.most_common(total) == [("1", 2), ("b", 2)]  # ties: smaller key first
    assert c.describe(total) == "8 values, 6 distinct: 1=2, b=2"


def test_topk_keeps_the_largest_scores_with_payloads() -> None:
    t = TopK(3)
    values: list[JSON] = [[5, "e"], 1, [9, {"id": 9}], [5, "d"], 7]
    assert t.reduce(values) == [[9, {"id": 9}], [7, None], [5, "d"]]
    assert t.describe(t.reduce(values)) == 'top 3 of 3: 9 {"id": 9}, 7, 5 "d"'
    with pytest.raises(ValueError):
        TopK(0)


@PROPERTY
@given(st.lists(topk_values, max_size=30), st.integers(1, 5))
def test_topk_scores_are_the_k_largest(values: list[JSON], k: int) -> None:
    top = TopK(k).reduce(values)
    assert isinstance(top, list)
    scores = [v[0] if isinstance(v, list) else v for v in values]
    assert [p[0] for p in top if isinstance(p, list)] == sorted(scores, reverse=True)[:k]  # type: ignore[type-var]


@PROPERTY
@given(st.lists(finite, min_size=2, max_size=50))
def test_mean_matches_statistics(xs: list[float]) -> None:
    m = Mean()
    total = m.rereduce([m.reduce(xs[:1]), m.reduce(xs[1:])])
    assert isinstance(total, dict)
    big = max(abs(x) for x in xs)
    tiny = 1e-300  # 1e-9 * a subnormal is 0.0: no tolerance at all
    assert total["mean"] == pytest.approx(statistics.mean(xs), rel=1e-9, abs=1e-9 * big + tiny)
    assert m.variance(total) == pytest.approx(
        statistics.variance(xs), rel=1e-9, abs=1e-9 * big * big + tiny
    )


def normal_sample(seed: int, n: int) -> list[float]:
    rng = random.Random(seed)
    return [rng.gauss(10.0, 3.0) for _ in range(n)]


def test_mean_interval_shrinks_with_n_and_knows_other_confidences() -> None:
    m = Mean()
    widths = []
    for n in (25, 100, 400, 1600):
        lo_hi = m.interval(m.reduce(normal_sample(1, n)))
        assert lo_hi is not None
        widths.append(lo_hi[1] - lo_hi[0])
    assert widths == sorted(widths, reverse=True)
    assert widths[-1] == pytest.approx(2 * 1.959963984540054 * 3.0 / 40, rel=0.1)
    total = m.reduce(normal_sample(2, 100))
    i95, i99 = m.interval(total), m.interval(total, confidence=0.99)
    assert i95 is not None and i99 is not None
    assert (i99[1] - i99[0]) / (i95[1] - i95[0]) == pytest.approx(2.5758293 / 1.9599640)
    assert m.variance(m.reduce([4.0])) is None and m.interval(m.reduce([4.0])) is None
    with pytest.raises(ValueError):
        m.interval(total, confidence=1.0)


def test_mean_finite_population_correction_and_estimate() -> None:
    xs = normal_sample(3, 50)
    census = Mean(population=50)
    total = census.reduce(xs)
    lo, hi = census.interval(total) or (0.0, 1.0)
    assert lo == hi == pytest.approx(statistics.mean(xs))
    free, half = Mean().interval(total), Mean(population=100).interval(total)
    assert free is not None and half is not None
    assert (half[1] - half[0]) / (free[1] - free[0]) == pytest.approx(math.sqrt(50 / 99))
    est = Mean(population=100).estimate(total)
    assert wire(est) == est
    assert est["n"] == 50 and est["population"] == 100
    assert est["mean"] == pytest.approx(statistics.mean(xs))
    assert est["total"] == pytest.approx(100 * statistics.mean(xs))
    assert est["ci95"] == list(half)
    assert est["total_ci95"] == [half[0] * 100, half[1] * 100]
    assert Mean().estimate(total)["total"] is None
    assert Mean().estimate(total)["total_ci95"] is None
    assert Mean().estimate(Mean().reduce([1.0]))["ci95"] is None
    assert Mean().estimate(None) == {
        "mean": None, "ci95": None, "n": 0, "total": None, "total_ci95": None, "population": None,
        "value": None, "skewness": None,
    }  # fmt: skip


def test_mean_describe() -> None:
    n, half = 1234, 0.4
    m2 = (half / 1.959963984540054) ** 2 * n * (n - 1)
    assert Mean().describe({"n": n, "mean": 12.3, "m2": m2}) == "mean 12.3 ± 0.4 (n=1,234)"
    total: JSON = {"n": n, "mean": 12.3, "m2": m2 * (0.15 / 0.4) ** 2}
    assert Mean(population=5000).describe(total).endswith("(n=1,234 of 5,000)")
    assert Mean().describe(total) == "mean 12.30 ± 0.15 (n=1,234)"
    assert Mean().describe(Mean().reduce([7])) == "mean 7 (n=1)"
    assert Mean().describe(None) == "mean: no values yet"


def test_mean_interval_covers_the_true_mean_about_95_percent_of_the_time() -> None:
    """Exponential(1) draws are skewed, so this also checks the normal approximation holds."""
    m, hits = Mean(), 0
    for seed in range(400):
        rng = random.Random(seed)
        xs: list[JSON] = [rng.expovariate(1.0) for _ in range(200)]
        total = m.rereduce([m.reduce(xs[i : i + 50]) for i in range(0, 200, 50)])
        lo_hi = m.interval(total)
        assert lo_hi is not None
        hits += lo_hi[0] <= 1.0 <= lo_hi[1]
    assert 0.92 <= hits / 400 <= 0.98


@PROPERTY
@given(
    st.integers(1, 10_000).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n))),
    st.floats(0.5, 0.999),
    st.one_of(st.none(), st.integers(0, 10_000)),
)
def test_wilson_interval_stays_in_0_1_around_the_estimate(
    nk: tuple[int, int], confidence: float, extra: int | None
) -> None:
    n, k = nk
    p = Proportion(population=None if extra is None else n + extra)
    lo_hi = p.interval({"n": n, "k": k}, confidence)
    assert lo_hi is not None
    lo, hi = lo_hi
    assert 0.0 <= lo <= k / n + 1e-12 and k / n - 1e-12 <= hi <= 1.0


def test_proportion_values_interval_and_estimate() -> None:
    p = Proportion()
    assert p.reduce([True, False, 1, 0, 1.0]) == {"n": 5, "k": 3}
    bads: list[JSON] = ["yes", 2, None, [True]]
    for bad in bads:
        with pytest.raises(ValueError, match="true/false"):
            p.reduce([bad])
    lo_hi = p.interval({"n": 10, "k": 0})
    assert lo_hi is not None
    assert lo_hi[0] == 0.0 and lo_hi[1] == pytest.approx(0.2775, abs=1e-4)  # textbook value
    assert p.interval(None) is None
    census = Proportion(population=40).interval({"n": 40, "k": 10})
    assert census == (0.25, 0.25)
    est = Proportion(population=1000).estimate({"n": 200, "k": 50})
    assert wire(est) == est and est["mean"] == 0.25 and est["total"] == 250.0
    ci, total_ci = est["ci95"], est["total_ci95"]
    assert isinstance(ci, list) and isinstance(total_ci, list)
    assert total_ci == [ci[0] * 1000, ci[1] * 1000]  # type: ignore[operator]
    assert p.describe({"n": 1234, "k": 152}) == "proportion 12.3% [10.6%, 14.3%] (k=152, n=1,234)"
    assert p.describe(None) == "proportion: no values yet"


@PROPERTY
@given(st.lists(finite, min_size=3, max_size=50), st.integers(0, 50))
def test_mean_skewness_matches_the_two_pass_formula(xs: list[float], cut: int) -> None:
    m = Mean()
    total = m.rereduce([m.reduce(xs[:cut]), m.reduce(xs[cut:])])
    mu = statistics.fmean(xs)
    m2 = sum((x - mu) ** 2 for x in xs)
    m3 = sum((x - mu) ** 3 for x in xs)
    g1 = m.skewness(total)
    if m2 <= 1e-9 * max(abs(x) for x in xs) ** 2 * len(xs) or m2**1.5 < 1e-200:
        return  # (near-)constant or subnormal values: the skewness is noise
    assert g1 == pytest.approx(math.sqrt(len(xs)) * m3 / m2**1.5, rel=1e-5, abs=1e-6)


def test_a_mean_state_from_before_the_third_moment_still_reads() -> None:
    m = Mean()
    old: JSON = {"n": 3, "mean": 2.0, "m2": 2.0}
    merged = m.rereduce([old, m.reduce([4.0, 5.0])])
    assert merged == {"n": 5, "mean": 3.0, "m2": 10.0}  # no m3: its skewness stays unknown
    assert m.skewness(merged) is None and m.interval(merged) is not None
    assert m.rereduce([None, old]) == old


def test_total_is_n_times_the_mean_and_exact_at_a_census() -> None:
    xs = normal_sample(4, 100)
    t = Total(population=1000)
    state = t.reduce(xs)
    est = t.estimate(state)
    mean_ci = Mean(population=1000).interval(state)
    assert mean_ci is not None and wire(est) == est
    assert est["value"] == pytest.approx(1000 * statistics.fmean(xs))
    assert est["ci95"] == [mean_ci[0] * 1000, mean_ci[1] * 1000]
    assert t.describe(state).startswith("total 10,") and "(n=100 of 1,000)" in t.describe(state)
    ints = list(range(1, 11))
    census = Total(population=10)
    whole = census.rereduce([census.reduce(ints[:4]), census.reduce(ints[4:])])
    assert census.estimate(whole)["value"] == 55 and census.estimate(whole)["ci95"] == [55, 55]
    assert census.describe(whole) == "total 55 (exact, n=10 of 10)"
    assert Total().estimate(state)["value"] is None  # no population: no total
    assert "unknown" in Total().describe(state)
    assert Total().describe(None) == "total: no values yet"
