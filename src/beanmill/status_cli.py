"""`beanmill status` and `beanmill plot`: read a checkpoint, safe while the reducer runs."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from beanmill import datadir
from beanmill.beanstalk.binlog_flag import BinlogFull, waiting_at
from beanmill.checkpoint import read_snapshot
from beanmill.errors import BeanmillError
from beanmill.progress import status_lines
from beanmill.rebuild import rebuild_due


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
@click.option(
    "--beanstalkd",
    default=None,
    metavar="HOST:PORT",
    help="also ask it which roles wait on its full binlog disk [default with --data-dir: "
    "the running `run`'s]",
)
def status(
    checkpoint: Path | None, data_dir: Path | None, as_json: bool, beanstalkd: str | None
) -> None:
    """Read a checkpoint (safe while the reducer runs)."""
    path = checkpoint_path(checkpoint, data_dir)
    snap = read_snapshot(path)
    address = beanstalkd or (datadir.live_address(data_dir) if data_dir else None)
    waiting = waiting_at(address, snap.job) if address else None
    due = rebuild_due(path)
    if as_json:
        binlog = None if waiting is None else [w.as_json() for w in waiting]
        click.echo(json.dumps({**snap.as_json(), "rebuild_due": due, "binlog_full": binlog}))
        return
    click.echo("\n".join(status_lines(snap) + _machine_lines(due, waiting)))


def _machine_lines(due: bool, waiting: list[BinlogFull] | None) -> list[str]:
    """A rebuild under way, and the roles waiting for beanstalkd's binlog disk."""
    lines = []
    if due:
        lines.append("rebuild:  due: the producer re-puts the batches the checkpoint lacks")
    now = time.time()
    lines += [f"waiting:  {w.describe(now)}" for w in waiting or ()]
    return lines


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
