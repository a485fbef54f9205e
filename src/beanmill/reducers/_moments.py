"""Estimators from streamed moments: a mean, a proportion and a population total, each with
its 95% interval and the finite-population correction."""

from __future__ import annotations

import math
from collections.abc import Sequence

from beanmill.jsontypes import JSON
from beanmill.reducers._common import _dict, _fmt, _int, _num, _pm, _present, z_of

__all__ = ["Mean", "Proportion", "Total"]


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
            "value": mean,
            "skewness": self.skewness(total),
        }

    def skewness(self, total: JSON) -> float | None:
        """The values' sample skewness, for the stop rule's minimum n; None when unknown."""
        raise NotImplementedError

    def _of(self, n: int) -> str:
        return f"n={n:,}" + ("" if self.population is None else f" of {self.population:,}")


class Mean(_Estimator):
    """Welford within a batch and Chan et al.'s merge across partials (with Pébay's third
    moment, for the skewness that the stop rule needs): numerically stable where the naive
    sums of powers cancel catastrophically. A state written before "m3" existed still reads;
    its skewness stays unknown."""

    label = "Mean"

    def _parts(self, p: JSON) -> tuple[int, float, float, float | None]:
        d = _dict(p, self.label)
        n, mean, m2 = d.get("n"), d.get("mean"), d.get("m2")
        m3 = d.get("m3")
        return (
            _int(n, f"{self.label} n"),
            float(_num(mean, self.label)),
            float(_num(m2, f"{self.label} m2")),
            None if m3 is None else float(_num(m3, f"{self.label} m3")),
        )

    @staticmethod
    def _state(n: int, mean: float, m2: float, m3: float | None) -> dict[str, JSON]:
        state: dict[str, JSON] = {"n": n, "mean": mean, "m2": m2}
        if m3 is not None:
            state["m3"] = m3
        return state

    def reduce(self, values: Sequence[JSON]) -> JSON:
        n, mean, m2, m3 = 0, 0.0, 0.0, 0.0
        for v in values:
            x = _num(v, self.label)
            n += 1
            delta = x - mean
            step = delta / n
            term = delta * step * (n - 1)
            mean += step
            m3 += term * step * (n - 2) - 3 * step * m2
            m2 += term
        return self._state(n, mean, m2, m3)

    def rereduce(self, partials: Sequence[JSON]) -> JSON:
        na, ma, m2a, m3a = self._parts(self.reduce([]))
        for p in _present(partials):
            nb, mb, m2b, m3b = self._parts(p)
            if na == 0 or nb == 0:  # exact: merging with the identity must change nothing
                na, ma, m2a, m3a = (nb, mb, m2b, m3b) if nb else (na, ma, m2a, m3a)
                continue
            n = na + nb
            delta = mb - ma
            m3 = None
            if m3a is not None and m3b is not None:
                m3 = (
                    m3a
                    + m3b
                    + delta**3 * na * nb * (na - nb) / n**2
                    + 3 * delta * (na * m2b - nb * m2a) / n
                )
            na, ma, m2a, m3a = n, ma + delta * nb / n, m2a + m2b + delta**2 * na * nb / n, m3
        return self._state(na, ma, m2a, m3a)

    def variance(self, total: JSON) -> float | None:
        """The sample variance (n - 1 in the denominator); None below two values."""
        n, _, m2, _ = self._parts(total or self.reduce([]))
        return m2 / (n - 1) if n >= 2 else None

    def skewness(self, total: JSON) -> float | None:
        """The sample skewness g1 = m3/n / (m2/n)^1.5; None below three values, for constant
        values, or for a state from before m3 was kept."""
        n, _, m2, m3 = self._parts(total or self.reduce([]))
        scale = m2**1.5
        if n < 3 or m3 is None or scale <= 0:
            return None
        g1: float = math.sqrt(n) * m3 / scale
        return g1

    def _mean_n(self, total: JSON) -> tuple[float | None, int]:
        n, mean, _, _ = self._parts(total or self.reduce([]))
        return (mean if n else None), n

    def interval(self, total: JSON, confidence: float = 0.95) -> tuple[float, float] | None:
        """The normal approximation mean ± z·s/√n, with the FPC when the population is known.
        On skewed values it holds only from a large enough n: the stop rule waits for it
        (ending.skew_min_items and --min-items-to-stop, docs/sampling.md)."""
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

    def skewness(self, total: JSON) -> float | None:
        """(1 - 2p) / sqrt(p(1 - p)): rare events are as skewed as heavy tails."""
        p, _ = self._mean_n(total)
        if p is None or p in (0, 1):
            return None
        return (1 - 2 * p) / math.sqrt(p * (1 - p))

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


class Total(Mean):
    """The population total N * mean, with the interval N * the mean's (FPC included), so it
    narrows to zero width at a census, where the exact sum is reported. Its state is Mean's
    plus the exact sum of the values (integers stay exact); N comes from len(items())."""

    label = "Total"

    def reduce(self, values: Sequence[JSON]) -> JSON:
        state = _dict(super().reduce(values), self.label)
        nums = [_num(v, self.label) for v in values]
        state["sum"] = sum(nums) if all(isinstance(x, int) for x in nums) else math.fsum(nums)
        return state

    def rereduce(self, partials: Sequence[JSON]) -> JSON:
        present = _present(partials)
        state = _dict(super().rereduce(present), self.label)
        sums = [_num(_dict(p, self.label).get("sum", 0), "Total sum") for p in present]
        state["sum"] = sum(sums) if all(isinstance(x, int) for x in sums) else math.fsum(sums)
        return state

    def _census(self, total: JSON) -> int | float | None:
        """The exact sum once every item is in; None before."""
        _, n = self._mean_n(total)
        if self.population is None or n < self.population:
            return None
        return _num(_dict(total or self.reduce([]), self.label).get("sum", 0), "Total sum")

    def interval(self, total: JSON, confidence: float = 0.95) -> tuple[float, float] | None:
        """The mean's interval times N; exact (zero width) at a census; None if N is unknown."""
        census = self._census(total)
        if census is not None:
            return (census, census)
        ci = super().interval(total, confidence)
        N = self.population
        return None if ci is None or N is None else (ci[0] * N, ci[1] * N)

    def estimate(self, total: JSON) -> dict[str, JSON]:
        mean, n = self._mean_n(total)
        N = self.population
        ci = self.interval(total)
        census = self._census(total)
        value = census if census is not None else None if N is None or mean is None else mean * N
        return {
            "value": value,
            "ci95": None if ci is None else [ci[0], ci[1]],
            "mean": mean,
            "n": n,
            "population": N,
            "skewness": self.skewness(total),
        }

    def describe(self, total: JSON) -> str:
        mean, n = self._mean_n(total)
        census, ci, N = self._census(total), self.interval(total), self.population
        if mean is None:
            return "total: no values yet"
        if census is not None:
            return f"total {_fmt(census)} (exact, {self._of(n)})"
        if N is None:
            return f"total: unknown without len(items()) ({self._of(n)})"
        shown = _fmt(mean * N) if ci is None else _pm(mean * N, (ci[1] - ci[0]) / 2)
        return f"total {shown} ({self._of(n)})"
