"""`beanmill status` and `beanmill plot`: read a checkpoint, safe while the reducer runs."""

from __future__ import annotations

import json
from pathlib import Path

import click

from beanmill import datadir
from beanmill.checkpoint import read_snapshot
from beanmill.errors import BeanmillError
from beanmill.progress import status_lines


def register(group: click.Group) -> None:
    group.add_command(status)
    group.add_command(plot)


def checkpoint_path(checkpoint: Path | None, data_dir: Path | None) -> Path:
    if (checkpoint is None) == (data_dir is None):
        raise BeanmillError("give exactly one of --checkpoint PATH or --data-dir DIR")
    return checkpoint or (data_dir or Path()) / datadir.CHECKPOINT


@click.command()
@click.option("--checkpoint", type=click.Path(path_type=Path), default=None)
@click.option("--data-dir", type=click.Path(path_type=Path), default=None)
@click.option("--json", "as_json", is_flag=True, help="one JSON object")
def status(checkpoint: Path | None, data_dir: Path | None, as_json: bool) -> None:
    """Read a checkpoint (safe while the reducer runs)."""
    snap = read_snapshot(checkpoint_path(checkpoint, data_dir))
    if as_json:
        click.echo(json.dumps(snap.as_json()))
        return
    click.echo("\n".join(status_lines(snap)))


@click.command()
@click.option("--checkpoint", type=click.Path(path_type=Path), default=None)
@click.option("--data-dir", type=click.Path(path_type=Path), default=None)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    default=Path("convergence.png"),
    show_default=True,
)
@click.option("--truth", type=float, default=None, help="draw the known answer as a line")
def plot(checkpoint: Path | None, data_dir: Path | None, output: Path, truth: float | None) -> None:
    """Plot the estimate and its 95% interval against items done (needs matplotlib)."""
    from beanmill.plot import plot_convergence

    points = plot_convergence(checkpoint_path(checkpoint, data_dir), output, truth)
    click.echo(f"wrote {output} ({points} points)")
