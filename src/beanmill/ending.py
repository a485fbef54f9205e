"""When a job is finished: every batch applied, or an end condition met on the estimate.

Pure functions over what the reducer knows, so each condition is easy to test on its own;
StopRule adds only the memory that a held-back stop was already said.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from beanmill.errors import BeanmillError
from beanmill.jsontypes import JSON

#: An interval from fewer items than this is too rough to stop on (the normal approximation).
MIN_ITEMS_FOR_CI = 30


#: The skewness rule: stop on an interval only once n >= SKEW_FACTOR * g1**2, i.e. once the
#: sample mean's own skewness g1/sqrt(n) is at most 1/sqrt(SKEW_FACTOR): Cochran's rule of
#: thumb (Sampling Techniques, 1977, 2.15). docs/sampling.md shows why a larger factor does
#: not help: a rule on the sample's skewness selects samples that have not seen the tail.
SKEW_FACTOR = 25

#: Default of --min-items-to-stop: no stop on an interval before this many items. Below it
#: the normal interval under-covers heavy tails at a coarse target, and the skewness rule
#: cannot tell, since a sample that has not met the tail looks unskewed (docs/sampling.md's
#: coverage table, tests/unit/test_coverage.py).
MIN_ITEMS_TO_STOP = 30_000


@runtime_checkable
class Estimates(Protocol):
    """A reducer that reports an estimate (a JSON object) of its total."""

    def estimate(self, total: JSON) -> dict[str, JSON]: ...


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
    #: With Fields: only this field's interval decides; None: every estimating field's.
    until_field: str | None = None
    #: --min-items-to-stop: an interval met before this many items does not stop the run.
    min_items_to_stop: int = MIN_ITEMS_TO_STOP

    @property
    def need_estimate(self) -> bool:
        return self.until_ci is not None or self.until_rel_ci is not None


def is_single(estimate: dict[str, JSON]) -> bool:
    """One estimate with its interval, as opposed to estimates keyed by field (Fields)."""
    return "ci95" in estimate and not isinstance(estimate["ci95"], dict)


def stop_targets(estimate: dict[str, JSON]) -> dict[str, dict[str, JSON]]:
    """The estimates a stop rule reads, by field ("" for a single reducer): those with a
    sampling interval (not Distinct's sketch bounds, not GroupBy's groups)."""
    if is_single(estimate):
        return {"": estimate}
    return {k: v for k, v in estimate.items() if isinstance(v, dict) and is_single(v)}


def half_width(estimate: dict[str, JSON]) -> float | None:
    ci = estimate.get("ci95")
    if not isinstance(ci, list) or len(ci) != 2:
        return None
    lo, hi = ci
    if not isinstance(lo, int | float) or not isinstance(hi, int | float):
        return None
    return (hi - lo) / 2


def point(estimate: dict[str, JSON]) -> float | None:
    """The point estimate: "value", or "mean" in estimates written before "value" existed."""
    value = estimate.get("value", estimate.get("mean"))
    return float(value) if isinstance(value, int | float) else None


def skew_min_items(estimate: dict[str, JSON]) -> int:
    """No stop on an interval from fewer values: MIN_ITEMS_FOR_CI, and the skewness rule."""
    g1 = estimate.get("skewness")
    if not isinstance(g1, int | float):
        return MIN_ITEMS_FOR_CI
    return max(MIN_ITEMS_FOR_CI, math.ceil(SKEW_FACTOR * g1 * g1))


def _field_met(conds: EndConditions, est: dict[str, JSON], items: int) -> tuple[str, float] | None:
    """Which condition one estimate meets ("ci" or "rel") and its measure; None if none."""
    n = est.get("n")
    if (n if isinstance(n, int) else items) < skew_min_items(est):
        return None
    half = half_width(est)
    if half is None:
        return None
    if conds.until_ci is not None and half <= conds.until_ci:
        return "ci", half
    value = point(est)
    if conds.until_rel_ci is not None and value:
        rel = half / abs(value)
        return ("rel", rel) if rel <= conds.until_rel_ci else None
    return None


def stop_reason(conds: EndConditions, items: int, estimate: dict[str, JSON] | None) -> str | None:
    """Why the job should stop now, in words an operator reads in `status`; None to go on.
    With several fields, every estimating field (or --until-field's) must meet it."""
    if conds.max_items is not None and items >= conds.max_items:
        return f"max items reached ({items:,} >= {conds.max_items:,})"
    if items < conds.min_items_to_stop:
        return None
    return interval_met(conds, items, estimate)


def held_back(conds: EndConditions, items: int, estimate: dict[str, JSON] | None) -> str | None:
    """An interval stop that --min-items-to-stop holds back, in words; None if there is none."""
    if items >= conds.min_items_to_stop:
        return None
    met = interval_met(conds, items, estimate)
    if met is None:
        return None
    least = conds.min_items_to_stop
    return f"stop held back to --min-items-to-stop {least:,}: {met} at {items:,} items"


def interval_met(conds: EndConditions, items: int, estimate: dict[str, JSON] | None) -> str | None:
    """The interval conditions (--until-ci, --until-rel-ci) that hold now, in words."""
    if estimate is None or items < MIN_ITEMS_FOR_CI or not conds.need_estimate:
        return None
    targets = stop_targets(estimate)
    if conds.until_field is not None:
        targets = {k: v for k, v in targets.items() if k == conds.until_field}
    met = [_field_met(conds, est, items) for est in targets.values()]
    if not targets or None in met:
        return None
    kinds = {m[0] for m in met if m is not None}
    worst = max(m[1] for m in met if m is not None)
    which = "" if list(targets) == [""] else f" ({', '.join(targets)})"
    if kinds == {"ci"}:
        return f"95% interval half-width {worst:.4g} <= {conds.until_ci:g}{which}"
    if kinds == {"rel"}:
        return f"95% interval relative half-width {worst:.4g} <= {conds.until_rel_ci:g}{which}"
    return f"95% intervals within --until-ci or --until-rel-ci{which}"


class StopRule:
    """The end conditions as the reducer applies them over a run: a stop that
    --min-items-to-stop holds back is said once, on the next progress line, so an operator
    sees why a run whose interval looks tight goes on."""

    def __init__(self, conds: EndConditions) -> None:
        self.conds = conds
        self._note: str | None = None
        self._told = False

    def reason(self, items: int, estimate: dict[str, JSON] | None) -> str | None:
        """stop_reason, noting the first stop held back."""
        reason = stop_reason(self.conds, items, estimate)
        if reason is None and not self._told:
            self._note = held_back(self.conds, items, estimate)
            self._told = self._note is not None
        return reason

    def take_note(self) -> str:
        """The held-back note for a progress line (once), or ""."""
        note, self._note = self._note, None
        return f" ({note})" if note else ""


def check_until_field(reducer: object, field: str | None) -> None:
    """--until-field must name a field of the spec's Fields reducer (or "name.p90" of a
    Quantiles field): a typo would otherwise never stop the run."""
    from beanmill.reducers import Fields

    if field is None:
        return
    if not isinstance(reducer, Fields):
        raise BeanmillError(f"--until-field {field}: the spec's reducer is not Fields(...)")
    if field.split(".")[0] not in reducer.fields:
        names = ", ".join(reducer.fields)
        raise BeanmillError(f"--until-field {field}: no such field; the spec has {names}")
