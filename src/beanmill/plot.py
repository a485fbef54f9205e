"""`beanmill plot`: the estimate and its 95% interval against items done, from the checkpoint.

matplotlib is an optional extra (`pip install 'beanmill[plot]'`): only this command needs it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from beanmill.checkpoint import read_history, read_snapshot
from beanmill.errors import BeanmillError


def convergence_points(
    history: list[tuple[int, dict[str, Any]]],
) -> tuple[list[int], list[float], list[float], list[float]]:
    """(items, mean, low, high) for every commit that had an interval."""
    xs: list[int] = []
    means: list[float] = []
    lows: list[float] = []
    highs: list[float] = []
    for items, est in history:
        ci = est.get("ci95")
        if est.get("mean") is None or not ci:
            continue
        xs.append(items)
        means.append(float(est["mean"]))
        lows.append(float(ci[0]))
        highs.append(float(ci[1]))
    return xs, means, lows, highs


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
    xs, means, lows, highs = convergence_points(read_history(checkpoint))
    if not xs:
        raise BeanmillError(
            f"{checkpoint} has no estimates to plot: the job's reducer must be an estimator "
            "(Mean or Proportion) and some batches must be applied"
        )
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    ax.fill_between(xs, lows, highs, alpha=0.25, label="95% interval")
    ax.plot(xs, means, label="estimate")
    if truth is not None:
        ax.axhline(truth, color="black", linestyle="--", linewidth=1, label="truth")
    ax.set_xscale("log")
    ax.set_xlabel("items done")
    ax.set_ylabel("mean")
    title = f"{snap.job}: {snap.items:,} items"
    if snap.stopped_because:
        title += f" (stopped: {snap.stopped_because})"
    ax.set_title(title, fontsize=10)
    ax.legend()
    fig.tight_layout()
    fig.savefig(output)
    plt.close(fig)
    return len(xs)
