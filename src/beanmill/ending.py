"""When a job is finished: every batch applied, or an end condition met on the estimate.

Pure functions over what the reducer knows, so each condition is easy to test on its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from beanmill.jsontypes import JSON

#: An interval from fewer items than this is too rough to stop on (the normal approximation).
MIN_ITEMS_FOR_CI = 30


@runtime_checkable
class Estimator(Protocol):
    """A reducer whose total is a sample estimate with a confidence interval."""

    population: int | None

    def interval(self, total: JSON, confidence: float = 0.95) -> tuple[float, float] | None: ...

    def estimate(self, total: JSON) -> dict[str, JSON]: ...


@dataclass(frozen=True)
class EndConditions:
    max_items: int | None = None
    until_ci: float | None = None
    until_rel_ci: float | None = None

    @property
    def need_estimate(self) -> bool:
        return self.until_ci is not None or self.until_rel_ci is not None


def half_width(estimate: dict[str, JSON]) -> float | None:
    ci = estimate.get("ci95")
    if not isinstance(ci, list) or len(ci) != 2:
        return None
    lo, hi = ci
    if not isinstance(lo, int | float) or not isinstance(hi, int | float):
        return None
    return (hi - lo) / 2


def stop_reason(conds: EndConditions, items: int, estimate: dict[str, JSON] | None) -> str | None:
    """Why the job should stop now, in words an operator reads in `status`; None to go on."""
    if conds.max_items is not None and items >= conds.max_items:
        return f"max items reached ({items:,} >= {conds.max_items:,})"
    if estimate is None or items < MIN_ITEMS_FOR_CI:
        return None
    half = half_width(estimate)
    if half is None:
        return None
    if conds.until_ci is not None and half <= conds.until_ci:
        return f"95% interval half-width {half:.4g} <= {conds.until_ci:g}"
    mean = estimate.get("mean")
    if conds.until_rel_ci is not None and isinstance(mean, int | float) and mean != 0:
        rel = half / abs(mean)
        if rel <= conds.until_rel_ci:
            return f"95% interval relative half-width {rel:.4g} <= {conds.until_rel_ci:g}"
    return None
