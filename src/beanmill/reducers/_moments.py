"""Estimators from streamed moments: a mean, a proportion and a population total, each with
its 95% interval and the finite-population correction."""

from __future__ import annotations

import math
from collections.abc import Sequence

from beanmill.jsontypes import JSON
from beanmill.reducers._common import _dict, _int, _num, _pm, _present, z_of

__all__ = ["Mean", "Proportion"]


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
        half = z_of(confidence) * math.sqrt(var / n) * self._fpc(n)
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
        z, m = z_of(confidence), n / fpc**2
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
