"""Helpers shared by the ready reducers: checks that turn a bad JSON value into one clear
ValueError, and number formats for the progress line."""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist

from beanmill.jsontypes import JSON

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


def _pm(mean: float, half: float) -> str:
    """Rounds to the half-width's first significant digit (two when it starts with a 1)."""
    if half <= 0:
        return f"{mean:,.6g} ± 0"
    digits = -math.floor(math.log10(half))
    if half * 10**digits < 2:
        digits += 1
    d = max(0, digits)
    return f"{mean:,.{d}f} ± {half:,.{d}f}"


def z_of(confidence: float) -> float:
    """The two-sided normal quantile: 1.96 for 95%."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    return Z95 if confidence == 0.95 else NormalDist().inv_cdf((1 + confidence) / 2)
