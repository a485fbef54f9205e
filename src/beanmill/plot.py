"""`beanmill plot`: the estimate and its 95% interval against items done, from the checkpoint.

matplotlib is an optional extra (`pip install 'beanmill[plot]'`): only this command needs it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from beanmill.checkpoint import read_history, read_snapshot
from beanmill.ending import point, stop_targets
from beanmill.errors import BeanmillError

Points = tuple[list[int], list[float], list[float], list[float]]


def convergence_points(history: list[tuple[int, dict[str, Any]]], field: str = "") -> Points:
    """(items, estimate, low, high) for every commit where the field ("" for a single
    reducer) had an interval."""
    xs: list[int] = []
    means: list[float] = []
    lows: list[float] = []
    highs: list[float] = []
    for items, est in history:
        one = stop_targets(est).get(field)
        value = None if one is None else point(one)
        ci = None if one is None else one.get("ci95")
        if value is None or not isinstance(ci, list):
            continue
        lo, hi = ci
        if not isinstance(lo, int | float) or not isinstance(hi, int | float):
            continue
        xs.append(items)
        means.append(value)
        lows.append(float(lo))
        highs.append(float(hi))
    return xs, means, lows, highs


def field_names(history: list[tuple[int, dict[str, Any]]]) -> list[str]:
    """Every field with an interval in the history, in first-seen order."""
    names: dict[str, None] = {}
    for _, est in history:
        names |= dict.fromkeys(stop_targets(est))
    return list(names)


def plot_convergence(checkpoint: Path, output: Path, truth: float | None = None) -> int:
    """Write the plot; returns the number of points drawn."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise BeanmillError(
            "beanmill plot needs matplotlib: pip install 'beanmill[plot]'"
        ) from None
    snap = read_snapshot(checkpoint)
    history = read_history(checkpoint)
    series = {name: convergence_points(history, name) for name in field_names(history)}
    series = {name: points for name, points in series.items() if points[0]}
    if not series:
        raise BeanmillError(
            f"{checkpoint} has no estimates to plot: the job's reducer must be an estimator "
            "(Mean, Proportion, Total, Quantile or Fields of them) and some batches must be "
            "applied"
        )
    fig, axes = plt.subplots(
        len(series), 1, figsize=(8, 1.5 + 3 * len(series)), dpi=100, sharex=True, squeeze=False
    )
    for ax, (name, (xs, means, lows, highs)) in zip(axes[:, 0], series.items(), strict=True):
        ax.fill_between(xs, lows, highs, alpha=0.25, label="95% interval")
        ax.plot(xs, means, label="estimate")
        if truth is not None and len(series) == 1:
            ax.axhline(truth, color="black", linestyle="--", linewidth=1, label="truth")
        ax.set_xscale("log")
        ax.set_ylabel(name or "estimate")
        ax.legend()
    axes[-1, 0].set_xlabel("items done")
    title = f"{snap.job}: {snap.items:,} items"
    if snap.stopped_because:
        title += f" (stopped: {snap.stopped_because})"
    axes[0, 0].set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(output)
    plt.close(fig)
    return sum(len(points[0]) for points in series.values())
