"""The live line's arithmetic: the items left to the end target, the ETA, the text.

Pure, so each piece is tested without a terminal; live_line.py draws it with tqdm.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

from beanmill.ending import EndConditions, half_width, point, skew_min_items, stop_targets
from beanmill.jsontypes import JSON
from beanmill.progress import duration


def _items_for(est: dict[str, JSON], items: int, conds: EndConditions) -> float | None:
    """Items at which one estimate's interval meets --until-ci / --until-rel-ci, from the
    half-width shrinking as 1/sqrt(n): n* = n (h / h*)^2."""
    half = half_width(est)
    value = point(est)
    n = est.get("n")
    n = n if isinstance(n, int) and n > 0 else items
    goals = [conds.until_ci] if conds.until_ci is not None else []
    if conds.until_rel_ci is not None and value:
        goals.append(conds.until_rel_ci * abs(value))
    if half is None or n <= 0 or not goals:
        return None
    goal = max(goals)  # either condition stops the job
    needed = max(n * (half / goal) ** 2 if goal > 0 else math.inf, skew_min_items(est))
    # fields with missing values see fewer than `items`; no stop before --min-items-to-stop
    return max(items * needed / n, float(conds.min_items_to_stop))


def target_items(
    conds: EndConditions, items: int, estimate: dict[str, JSON] | None, population: int | None
) -> int | None:
    """Items at which the job will stop: --max-items, the projected --until-* target, or the
    population, whichever comes first; None when nothing says."""
    ends: list[float] = [population] if population else []
    if conds.max_items is not None:
        ends.append(conds.max_items)
    if conds.need_estimate and estimate:
        targets = stop_targets(estimate)
        if conds.until_field is not None:
            targets = {k: v for k, v in targets.items() if k == conds.until_field}
        needed = [_items_for(est, items, conds) for est in targets.values()]
        if targets and None not in needed:
            ends.append(max(n for n in needed if n is not None))  # every field must meet it
    if not ends:
        return None
    return max(items, math.ceil(min(ends)))


def eta_seconds(items: int, target: int | None, rate: float) -> float | None:
    if target is None or rate <= 0:
        return None
    return max(0, target - items) / rate


def estimate_text(estimate: dict[str, JSON] | None, field: str | None = None) -> str:
    """`est 12.5±0.31`: the estimate the stop rule reads (--until-field's, else the first)."""
    targets = stop_targets(estimate) if estimate else {}
    if field is not None and field in targets:
        targets = {field: targets[field]}
    for name, est in targets.items():
        value, half = point(est), half_width(est)
        if value is None or half is None:
            continue
        label = f"{name}=" if name else ""
        return f"est {label}{value:.6g}±{half:.2g}"
    return ""


@dataclass(frozen=True)
class LineFacts:
    """What the line says after the bar."""

    rate: float | None
    eta: float | None
    #: The ETA (and the bar) run to the projected --until-* target, not to the population.
    to_target: bool = False
    estimate: str = ""
    failed: int = 0
    buried: int = 0


def postfix(facts: LineFacts) -> str:
    """Rate, ETA (to the sampling target when there is one), estimate, failures."""
    parts = [] if facts.rate is None else [f"{facts.rate:,.0f} items/s"]
    if facts.eta is not None:
        parts.append(f"ETA {duration(facts.eta)}{' to target' if facts.to_target else ''}")
    if facts.estimate:
        parts.append(facts.estimate)
    if facts.failed:
        parts.append(f"{facts.failed:,} failed")
    if facts.buried:
        parts.append(f"{facts.buried:,} buried")
    return " | ".join(parts)


class Line(Protocol):
    """What `run` calls: redraw now and then; end before printing the result."""

    def tick(self, force: bool = False) -> None: ...

    def close(self) -> None: ...


class NoLine:
    """Off a terminal: the reducer's plain progress lines say it all."""

    def tick(self, force: bool = False) -> None:
        return None

    def close(self) -> None:
        return None
