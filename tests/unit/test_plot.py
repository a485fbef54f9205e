"""`beanmill plot` draws the estimate's history from the checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from beanmill.checkpoint import Checkpoint, read_history
from beanmill.errors import BeanmillError
from beanmill.jsontypes import JSON
from beanmill.plot import convergence_points, field_names, plot_convergence
from beanmill.reducers import Count, Fields, Mean, Quantile


def test_plot_draws_one_point_per_commit_with_an_interval(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    path = tmp_path / "ck.sqlite"
    ckpt = Checkpoint(path, "job")
    mean = Mean(population=10_000)
    values: list[float] = []
    for seq in range(5):
        batch = [float((seq * 37 + i * 11) % 100) for i in range(50)]
        values += batch
        total = mean.reduce(values)
        ckpt.commit(
            total=total,
            items=len(values),
            applied=[(f"s50-{seq}", 50)],
            estimate=mean.estimate(total),
        )
    ckpt.close()
    out = tmp_path / "conv.png"
    assert plot_convergence(path, out, truth=49.5) == 5
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_without_estimates_says_why(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    path = tmp_path / "ck.sqlite"
    ckpt = Checkpoint(path, "job")
    ckpt.commit(total=3, items=3, applied=[("s3-0", 3)])
    ckpt.close()
    with pytest.raises(BeanmillError, match="no estimates to plot"):
        plot_convergence(path, tmp_path / "x.png")


def test_points_skip_commits_without_an_interval() -> None:
    history: list[tuple[int, dict[str, Any]]] = [
        (1, {"mean": 2.0, "ci95": None}),
        (5, {"mean": 3.0, "ci95": [2.0, 4.0]}),
    ]
    assert convergence_points(history) == ([5], [3.0], [2.0], [4.0])


def test_plot_draws_every_field(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    path = tmp_path / "ck.sqlite"
    ckpt = Checkpoint(path, "job")
    fields = Fields(mean=Mean(), p90=Quantile(0.9), n=Count())
    values: list[JSON] = []
    for seq in range(4):
        values += [
            {"mean": float(i % 97), "p90": float(i % 89), "n": 1}
            for i in range(50 * seq, 50 * seq + 50)
        ]
        total = fields.reduce(values)
        ckpt.commit(
            total=total,
            items=len(values),
            applied=[(f"s50-{seq}", 50)],
            estimate=fields.estimate(total),
        )
    ckpt.close()
    history = [(items, est) for items, est in read_history(path)]
    assert field_names(history) == ["mean", "p90"]
    assert len(convergence_points(history, "p90")[0]) == 4
    out = tmp_path / "conv.png"
    assert plot_convergence(path, out) == 8
