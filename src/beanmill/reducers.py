"""Ready-made reducers: monoids whose partials and totals are plain JSON, so they can travel
on the wire and sit in the checkpoint. A None partial (the checkpoint's total before the
first batch) counts as the identity everywhere."""

from __future__ import annotations

import heapq
import json
import math
from collections import Counter as _Tally
from collections.abc import Sequence
from statistics import NormalDist

from beanmill.jsontypes import JSON

__all__ = ["Count", "Counter", "Max", "Mean", "Min", "Proportion", "Sum", "TopK"]

Z95 = 1.959963984540054


def _num(x: JSON, who: str) -> int | float:
    # Non-finite numbers are refused here because the wire (allow_nan=False) would refuse later.
    if isinstance(x, int | float) and math.isfinite(x):
        return x
    raise ValueError(f"{who}: expected a finite number, got {x!r}")


def _int(x: JSON, who: str) -> int:
    if isinstance(x, int) and not isinstance(x, bool):
        return x
    raise ValueError(f"{who}: expected an integer, got {x!r}")


def _dict(x: JSON, who: str) -> dict[str, JSON]:
    if isinstance(x, dict):
        return x
    raise ValueError(f"{who}: expected a partial as a JSON object, got {x!r}")


def _present(partials: Sequence[JSON]) -> list[JSON]:
    return [p for p in partials if p is not None]


def _fmt(x: float) -> str:
    return f"{x:,}" if isinstance(x, int) else f"{x:,.6g}"


class Sum:
    """Integers stay exact; floats are added with fsum so chunking moves the result least."""

    def reduce(self, values: Sequence[JSON]) -> JSON:
        nums = [_num(v, "Sum") for v in values]
        return sum(nums) if all(isinstance(n, int) for n in nums) else math.fsum(nums)

    def rereduce(self, partials: Sequence[JSON]) -> JSON:
        return self.reduce(_present(partials))

    def describe(self, total: JSON) -> str:
        return f"sum {_fmt(_num(total or 0, 'Sum'))}"


class Count:
    """Counts values, whatever they are; the partial is an int."""

    def reduce(self, values: Sequence[JSON]) -> JSON:
        return len(values)

    def rereduce(self, partials: Sequence[JSON]) -> JSON:
        return sum(_int(p, "Count") for p in _present(partials))

    def describe(self, total: JSON) -> str:
        return f"count {_int(total or 0, 'Count'):,}"


class _Extreme:
    """None stands for "no values yet", so it is the identity."""

    label, largest = "", False

    def reduce(self, values: Sequence[JSON]) -> JSON:
        nums = [_num(v, self.label) for v in values]
        if not nums:
            return None
        return max(nums) if self.largest else min(nums)

    def rereduce(self, partials: Sequence[JSON]) -> JSON:
        return self.reduce(_present(partials))

    def describe(self, total: JSON) -> str:
        if total is None:
            return f"{self.label}: no values yet"
        return f"{self.label} {_fmt(_num(total, self.label))}"


class Min(_Extreme):
    """The smallest number; None until there is one."""

    label, largest = "min", False


class Max(_Extreme):
    """The largest number; None until there is one."""

    label, largest = "max", True


class Counter:
    """A histogram keyed by str(value), since JSON object keys must be strings."""

    def __init__(self, top: int = 10) -> None:
        if top < 0:
            raise ValueError("Counter(top=...) must be >= 0")
        self.top = top

    def reduce(self, values: Sequence[JSON]) -> JSON:
        counts: dict[str, JSON] = dict(_Tally(v if isinstance(v, str) else str(v) for v in values))
        return counts

    def rereduce(self, partials: Sequence[JSON]) -> JSON:
        tally: _Tally[str] = _Tally()
        for p in _present(partials):
            for key, c in _dict(p, "Counter").items():
                tally[key] += _int(c, "Counter")
        counts: dict[str, JSON] = dict(tally)
        return counts

    def most_common(self, total: JSON) -> list[tuple[str, int]]:
        """Ties go to the smaller key, so the summary does not depend on arrival order."""
        items = [(k, _int(c, "Counter")) for k, c in _dict(total or {}, "Counter").items()]
        return heapq.nsmallest(self.top, items, key=lambda kc: (-kc[1], kc[0]))

    def describe(self, total: JSON) -> str:
        counts = _dict(total or {}, "Counter")
        n = sum(_int(c, "Counter") for c in counts.values())
        shown = ", ".join(f"{k[:40]}={c:,}" for k, c in self.most_common(total))
        return f"{n:,} values, {len(counts):,} distinct" + (f": {shown}" if shown else "")


class TopK:
    """Keeps the k largest [score, payload] pairs. Ties are ordered by the payload's canonical
    JSON (then the score's), a total order, so any split rereduces to exactly the same list."""

    def __init__(self, k: int) -> None:
        if k < 1:
            raise ValueError("TopK(k=...) must be >= 1")
        self.k = k

    @staticmethod
    def _pair(v: JSON) -> list[JSON]:
        if isinstance(v, list) and len(v) == 2:
            return [_num(v[0], "TopK"), v[1]]
        return [_num(v, "TopK score"), None]

    def _top(self, pairs: list[list[JSON]]) -> JSON:
        def rank(p: list[JSON]) -> tuple[float, str, str]:
            score = _num(p[0], "TopK")
            return (-score, json.dumps(p[1], sort_keys=True), json.dumps(score))

        top = heapq.nsmallest(self.k, pairs, key=rank)
        return [*top]

    def reduce(self, values: Sequence[JSON]) -> JSON:
        return self._top([self._pair(v) for v in values])

    def rereduce(self, partials: Sequence[JSON]) -> JSON:
        pairs: list[list[JSON]] = []
        for p in _present(partials):
            if not isinstance(p, list):
                raise ValueError(f"TopK: expected a partial as a list of pairs, got {p!r}")
            pairs.extend(self._pair(v) for v in p)
        return self._top(pairs)

    def describe(self, total: JSON) -> str:
        pairs = [self._pair(v) for v in total] if isinstance(total, list) else []
        if not pairs:
            return f"top {self.k}: no values yet"
        shown = ", ".join(
            _fmt(_num(s, "TopK")) + ("" if p is None else f" {json.dumps(p)[:30]}")
            for s, p in pairs[:3]
        )
        return f"top {len(pairs)} of {self.k}: {shown}" + (", ..." if len(pairs) > 3 else "")


class _Estimator:
    """Shared by Mean and Proportion: a mean, its interval, and totals over a known population
    (the finite-population correction narrows the interval as the sample nears a census)."""

    def __init__(self, population: int | None = None) -> None:
        if population is not None and population < 1:
            raise ValueError("population must be >= 1 (or None when unknown)")
        self.population = population

    def _mean_n(self, total: JSON) -> tuple[float | None, int]:
        raise NotImplementedError

    def interval(self, total: JSON, confidence: float = 0.95) -> tuple[float, float] | None:
        raise NotImplementedError

    @staticmethod
    def _z(confidence: float) -> float:
        if not 0 < confidence < 1:
            raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
        return Z95 if confidence == 0.95 else NormalDist().inv_cdf((1 + confidence) / 2)

    def _fpc(self, n: int) -> float:
        """sqrt((N-n)/(N-1)); a sample larger than the declared population clamps to 0."""
        N = self.population
        if N is None:
            return 1.0
        return math.sqrt(max(0, N - n) / (N - 1)) if N > 1 else 0.0

    def estimate(self, total: JSON) -> dict[str, JSON]:
        mean, n = self._mean_n(total)
        ci = self.interval(total)
        N = self.population
        return {
            "mean": mean,
            "ci95": None if ci is None else [ci[0], ci[1]],
            "n": n,
            "total": None if N is None or mean is None else mean * N,
            "total_ci95": None if N is None or ci is None else [ci[0] * N, ci[1] * N],
            "population": N,
        }

    def _of(self, n: int) -> str:
        return f"n={n:,}" + ("" if self.population is None else f" of {self.population:,}")


def _pm(mean: float, half: float) -> str:
    """Rounds to the half-width's first significant digit (two when it starts with a 1)."""
    if half <= 0:
        return f"{mean:,.6g} ± 0"
    digits = -math.floor(math.log10(half))
    if half * 10**digits < 2:
        digits += 1
    d = max(0, digits)
    return f"{mean:,.{d}f} ± {half:,.{d}f}"


class Mean(_Estimator):
    """Welford within a batch and Chan et al.'s merge across partials: numerically stable
    where the naive sum of squares cancels catastrophically."""

    @staticmethod
    def _parts(p: JSON) -> tuple[int, float, float]:
        d = _dict(p, "Mean")
        n, mean, m2 = d.get("n"), d.get("mean"), d.get("m2")
        return _int(n, "Mean n"), float(_num(mean, "Mean")), float(_num(m2, "Mean m2"))

    def reduce(self, values: Sequence[JSON]) -> JSON:
        n, mean, m2 = 0, 0.0, 0.0
        for v in values:
            x = _num(v, "Mean")
            n += 1
            delta = x - mean
            mean += delta / n
            m2 += delta * (x - mean)
        return {"n": n, "mean": mean, "m2": m2}

    def rereduce(self, partials: Sequence[JSON]) -> JSON:
        na, ma, m2a = 0, 0.0, 0.0
        for p in _present(partials):
            nb, mb, m2b = self._parts(p)
            if na == 0 or nb == 0:  # exact: merging with the identity must change nothing
                na, ma, m2a = (nb, mb, m2b) if nb else (na, ma, m2a)
                continue
            n = na + nb
            delta = mb - ma
            na, ma, m2a = n, ma + delta * nb / n, m2a + m2b + delta**2 * na * nb / n
        return {"n": na, "mean": ma, "m2": m2a}

    def variance(self, total: JSON) -> float | None:
        """The sample variance (n - 1 in the denominator); None below two values."""
        n, _, m2 = self._parts(total or self.reduce([]))
        return m2 / (n - 1) if n >= 2 else None

    def _mean_n(self, total: JSON) -> tuple[float | None, int]:
        n, mean, _ = self._parts(total or self.reduce([]))
        return (mean if n else None), n

    def interval(self, total: JSON, confidence: float = 0.95) -> tuple[float, float] | None:
        """The normal approximation mean ± z·s/√n, with the FPC when the population is known."""
        var = self.variance(total)
        mean, n = self._mean_n(total)
        if var is None or mean is None:
            return None
        half = self._z(confidence) * math.sqrt(var / n) * self._fpc(n)
        return (mean - half, mean + half)

    def describe(self, total: JSON) -> str:
        mean, n = self._mean_n(total)
        ci = self.interval(total)
        if mean is None:
            return "mean: no values yet"
        shown = f"{mean:,.6g}" if ci is None else _pm(mean, (ci[1] - ci[0]) / 2)
        return f"mean {shown} ({self._of(n)})"


class Proportion(_Estimator):
    """The share of true values, with the Wilson score interval: it stays inside [0, 1] and
    behaves near 0% and 100%, where the normal approximation does not."""

    @staticmethod
    def _parts(p: JSON) -> tuple[int, int]:
        d = _dict(p, "Proportion")
        return _int(d.get("n"), "Proportion n"), _int(d.get("k"), "Proportion k")

    def reduce(self, values: Sequence[JSON]) -> JSON:
        k = 0
        for v in values:
            if not isinstance(v, int | float) or v not in (0, 1):
                raise ValueError(f"Proportion: expected true/false or 0/1, got {v!r}")
            k += bool(v)
        return {"n": len(values), "k": k}

    def rereduce(self, partials: Sequence[JSON]) -> JSON:
        parts = [self._parts(p) for p in _present(partials)]
        return {"n": sum(n for n, _ in parts), "k": sum(k for _, k in parts)}

    def _mean_n(self, total: JSON) -> tuple[float | None, int]:
        n, k = self._parts(total or self.reduce([]))
        return (k / n if n else None), n

    def interval(self, total: JSON, confidence: float = 0.95) -> tuple[float, float] | None:
        """Wilson's interval on the effective sample size n / fpc², so a census is exact."""
        p, n = self._mean_n(total)
        if p is None:
            return None
        fpc = self._fpc(n)
        if fpc == 0:
            return (p, p)
        z, m = self._z(confidence), n / fpc**2
        centre = (p + z * z / (2 * m)) / (1 + z * z / m)
        half = z * math.sqrt(p * (1 - p) / m + z * z / (4 * m * m)) / (1 + z * z / m)
        return (max(0.0, centre - half), min(1.0, centre + half))

    def describe(self, total: JSON) -> str:
        p, n = self._mean_n(total)
        ci = self.interval(total)
        if p is None or ci is None:
            return "proportion: no values yet"
        _, k = self._parts(total)
        return f"proportion {p:.1%} [{ci[0]:.1%}, {ci[1]:.1%}] (k={k:,}, {self._of(n)})"
