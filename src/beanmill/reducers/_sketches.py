"""Sketch reducers from Apache DataSketches: quantiles (KLL) and distinct counts (HLL).

A sketch's state is JSON: the number of values folded and the sketch's own serialisation in
base64, so partials travel on the wire and merge in rereduce. docs/sampling.md says why
DataSketches, and what the intervals account for.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from beanmill.jsontypes import JSON
from beanmill.reducers._common import _dict, _fmt, _int, _num, _present, z_of

if TYPE_CHECKING:
    from datasketches import hll_sketch, kll_doubles_sketch


def _ds() -> Any:
    """datasketches, imported at first use: loading it costs ~150 ms, and every role of a
    job that uses no sketch would pay it at start (this package imports this module)."""
    import datasketches

    return datasketches


__all__ = ["Distinct", "Quantile", "Quantiles"]

#: KLL's accuracy parameter: a normalized rank error of 0.28% (99% confidence) in about 24 KB
#: at most, while a batch of up to k values is kept exactly (8 bytes a value).
DEFAULT_K = 1000
#: HLL's: 2^12 registers, a relative standard error of 1.6%, at most 2.6 KB (HLL_8).
DEFAULT_LG_K = 12


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: JSON, who: str) -> bytes:
    if not isinstance(text, str):
        raise ValueError(f"{who}: expected the sketch as base64 text, got {text!r}")
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error as e:
        raise ValueError(f"{who}: the sketch is not valid base64: {e}") from None


class Quantiles:
    """Several quantiles of numeric values from one KLL sketch (its state carries n and the
    sketch). Estimates each with a 95% interval for the population's quantile: the binomial
    interval on ranks from sampling (with the finite-population correction), widened by the
    sketch's own rank error once it has compacted. A sketch of at most k values is exact."""

    label = "Quantiles"

    def __init__(self, *qs: float, k: int = DEFAULT_K, population: int | None = None) -> None:
        if not qs or not all(0 <= q <= 1 for q in qs):
            raise ValueError(f"{self.label}: give one or more quantiles in [0, 1], got {qs}")
        if not 8 <= k <= 65535:
            raise ValueError(f"{self.label}(k=...) must be in [8, 65535], got {k}")
        self.qs, self.k, self.population = tuple(qs), k, population

    def _state(self, sketch: kll_doubles_sketch) -> dict[str, JSON]:
        return {"n": int(sketch.n), "kll": _b64(sketch.serialize())}

    def _sketch(self, p: JSON) -> kll_doubles_sketch:
        data = _unb64(_dict(p, self.label).get("kll"), self.label)
        try:
            return _ds().kll_doubles_sketch.deserialize(data)
        except (RuntimeError, ValueError, IndexError) as e:
            raise ValueError(f"{self.label}: not a KLL sketch: {e}") from None

    def _exact(self, xs: list[float]) -> dict[str, JSON]:
        """A sketch of at most k values, built in sorted order: the same bytes for the same
        values, whatever the split and the order they came in."""
        sketch = _ds().kll_doubles_sketch(self.k)
        for x in sorted(xs):
            sketch.update(x)
        return self._state(sketch)

    def reduce(self, values: Sequence[JSON]) -> JSON:
        xs = [float(_num(v, self.label)) for v in values]
        if len(xs) <= self.k:
            return self._exact(xs)
        sketch = _ds().kll_doubles_sketch(self.k)
        for x in xs:
            sketch.update(x)
        return self._state(sketch)

    def rereduce(self, partials: Sequence[JSON]) -> JSON:
        present = [p for p in _present(partials) if _int(_dict(p, self.label).get("n"), "n")]
        if not present:
            return self.reduce([])
        if len(present) == 1:  # exact: merging with the identity changes nothing
            self._sketch(present[0])
            return present[0]
        sketches = [self._sketch(p) for p in present]
        if sum(s.n for s in sketches) <= self.k and not any(
            s.is_estimation_mode() for s in sketches
        ):
            return self._exact([x for s in sketches for x, _ in s])
        merged = _ds().kll_doubles_sketch(self.k)
        for sketch in sketches:
            merged.merge(sketch)
        return self._state(merged)

    def _fpc(self, n: int) -> float:
        N = self.population
        if N is None:
            return 1.0
        return math.sqrt(max(0, N - n) / (N - 1)) if N > 1 else 0.0

    def quantile_estimate(self, total: JSON, q: float) -> dict[str, JSON]:
        """One quantile's value and interval; the keys the stop rule reads are value/ci95."""
        sketch = self._sketch(total or self.reduce([]))
        n = int(sketch.n)
        est: dict[str, JSON] = {"q": q, "value": None, "ci95": None, "n": n}
        est |= {"population": self.population, "rank_error": 0.0}
        if n == 0:
            return est
        eps = 0.0
        if sketch.is_estimation_mode():
            eps = _ds().kll_doubles_sketch.get_normalized_rank_error(sketch.k, False)
        # The sample's rank of the population's q-quantile is binomial: q ± z·sd, and one
        # more value either side for the discreteness of order statistics.
        spread = z_of(0.95) * math.sqrt(q * (1 - q) / n) * self._fpc(n) + 1 / n
        if self._fpc(n) == 0:
            spread = 0.0
        lo, hi = max(0.0, q - spread - eps), min(1.0, q + spread + eps)
        # + 0.0: -0.0 and 0.0 are one value, whichever the merge order left in the sketch
        est |= {"value": sketch.get_quantile(q, True) + 0.0, "rank_error": eps}
        est["ci95"] = [sketch.get_quantile(lo, True) + 0.0, sketch.get_quantile(hi, True) + 0.0]
        return est

    def estimate(self, total: JSON) -> dict[str, JSON]:
        """Keyed by quantile ("p50", "p99.9"), each a flat estimate the stop rule reads."""
        return {_name(q): self.quantile_estimate(total, q) for q in self.qs}

    def interval(self, total: JSON, confidence: float = 0.95) -> tuple[float, float] | None:
        """None: several quantiles have several intervals (see estimate())."""
        return None

    def describe(self, total: JSON) -> str:
        parts = [_describe_one(self.quantile_estimate(total, q)) for q in self.qs]
        if any(p is None for p in parts):
            return f"{' '.join(_name(q) for q in self.qs)}: no values yet"
        n = _int(_dict(total, self.label).get("n"), "n")
        return ", ".join(p for p in parts if p) + f" (n={n:,})"


class Quantile(Quantiles):
    """One quantile, e.g. Quantile(0.9): its estimate is flat, like Mean's."""

    label = "Quantile"

    def __init__(self, q: float, k: int = DEFAULT_K, population: int | None = None) -> None:
        super().__init__(q, k=k, population=population)

    def estimate(self, total: JSON) -> dict[str, JSON]:
        return self.quantile_estimate(total, self.qs[0])

    def interval(self, total: JSON, confidence: float = 0.95) -> tuple[float, float] | None:
        """The 95% interval only: the rank error is stated at a fixed confidence."""
        if confidence != 0.95:
            raise ValueError(f"{self.label}: only the 95% interval is available")
        ci = self.estimate(total)["ci95"]
        if not isinstance(ci, list):
            return None
        return float(_num(ci[0], self.label)), float(_num(ci[1], self.label))


def _name(q: float) -> str:
    return f"p{q * 100:g}"


def _describe_one(est: dict[str, JSON]) -> str | None:
    value, ci, q = est["value"], est["ci95"], est["q"]
    if not isinstance(value, float | int) or not isinstance(q, float | int):
        return None
    shown = _fmt(value)
    if isinstance(ci, list) and isinstance(ci[0], float) and isinstance(ci[1], float):
        shown += f" [{_fmt(ci[0])}, {_fmt(ci[1])}]"
    return f"{_name(q)} {shown}"


def distinct_key(value: JSON) -> str:
    """What Distinct counts: canonical JSON, with whole floats as ints (1.0 is 1, as in ==)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


class Distinct:
    """How many distinct values (canonical JSON), from an HLL sketch: a relative standard
    error of about 1.04/sqrt(2^lg_k), 1.6% at the default. It counts the values seen, so it
    answers for a full run; on a sample it is the sample's distinct count, not extrapolated."""

    label = "Distinct"

    def __init__(self, lg_k: int = DEFAULT_LG_K) -> None:
        if not 4 <= lg_k <= 21:
            raise ValueError(f"Distinct(lg_k=...) must be in [4, 21], got {lg_k}")
        self.lg_k = lg_k

    def _state(self, sketch: hll_sketch, n: int) -> dict[str, JSON]:
        return {"n": n, "hll": _b64(sketch.serialize_compact())}

    def _sketch(self, p: JSON) -> hll_sketch:
        data = _unb64(_dict(p, self.label).get("hll"), self.label)
        try:
            return _ds().hll_sketch.deserialize(data)
        except (RuntimeError, ValueError, IndexError) as e:
            raise ValueError(f"{self.label}: not an HLL sketch: {e}") from None

    def reduce(self, values: Sequence[JSON]) -> JSON:
        sketch = _ds().hll_sketch(self.lg_k, _ds().tgt_hll_type.HLL_8)
        for v in values:
            try:
                sketch.update(distinct_key(v))
            except ValueError:
                raise ValueError(f"{self.label}: expected a JSON value, got {v!r}") from None
        return self._state(sketch, len(values))

    def rereduce(self, partials: Sequence[JSON]) -> JSON:
        present = [p for p in _present(partials) if _int(_dict(p, self.label).get("n"), "n")]
        if not present:
            return self.reduce([])
        if len(present) == 1:
            self._sketch(present[0])
            return present[0]
        union = _ds().hll_union(self.lg_k)
        for p in present:
            union.update(self._sketch(p))
        n = sum(_int(_dict(p, self.label).get("n"), "n") for p in present)
        return self._state(union.get_result(_ds().tgt_hll_type.HLL_8), n)

    def _summary(self, total: JSON) -> tuple[float, float, float, int]:
        """(estimate, lower, upper, n): bounds at two standard errors (95.4%)."""
        state = total or self.reduce([])
        sketch, n = self._sketch(state), _int(_dict(state, self.label).get("n"), "n")
        if sketch.is_empty():
            return 0.0, 0.0, 0.0, n
        return sketch.get_estimate(), sketch.get_lower_bound(2), sketch.get_upper_bound(2), n

    def estimate(self, total: JSON) -> dict[str, JSON]:
        """value, and sketch_ci95, the sketch's own bounds. Not "ci95": they do not narrow
        with n, so no stop rule waits on them."""
        value, lo, hi, n = self._summary(total)
        return {"value": value, "sketch_ci95": [lo, hi], "n": n, "rel_error": self.rel_error}

    @property
    def rel_error(self) -> float:
        """The relative standard error stated for this many registers: 1.04/sqrt(2^lg_k)."""
        return 1.04 / math.sqrt(2**self.lg_k)

    def equivalent(self, a: JSON, b: JSON) -> bool:
        """Two states of the same items: a sketch's bytes, and its estimate within the stated
        error, depend on the order of its merges (what `beanmill check` must allow)."""
        va, vb = self.estimate(a).get("value"), self.estimate(b).get("value")
        if not isinstance(va, int | float) or not isinstance(vb, int | float):
            return va == vb
        return abs(va - vb) <= 3 * self.rel_error * max(abs(va), abs(vb), 1.0)

    def describe(self, total: JSON) -> str:
        value, lo, hi, n = self._summary(total)
        if not n:
            return "distinct: no values yet"
        return f"distinct ~{value:,.0f} [{lo:,.0f}, {hi:,.0f}] (n={n:,})"
