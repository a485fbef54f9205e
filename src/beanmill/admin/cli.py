"""The operator commands stats, buried, requeue, delete and top: parse, call admin, print.

They need only the tube names, so each takes SPEC or `--job NAME` (a host without the
spec's code can still run them).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import click

from beanmill import datadir
from beanmill.admin import jobs as admin
from beanmill.admin import render
from beanmill.beanstalk.binlog_flag import waiting_at
from beanmill.checkpoint import Snapshot, read_snapshot
from beanmill.errors import BeanmillError
from beanmill.jobspec import load_spec

F = TypeVar("F", bound=Callable[..., Any])


def job_options(fn: F) -> F:
    """SPEC or --job NAME, and --beanstalkd: what every admin command needs."""
    fn = click.option(
        "--beanstalkd",
        envvar="BEANMILL_BEANSTALKD",
        default=None,
        metavar="HOST:PORT",
        help="address of beanstalkd (env BEANMILL_BEANSTALKD)",
    )(fn)
    fn = click.option(
        "--data-dir",
        type=click.Path(path_type=Path, file_okay=False),
        default=None,
        help="a `beanmill run` data dir, instead of --beanstalkd and --checkpoint: its live "
        "beanstalkd, or one started on its binlog for this command",
    )(fn)
    fn = click.option(
        "--job",
        "job_name",
        default=None,
        metavar="NAME",
        help="the job's name (tubes NAME.items, NAME.results), instead of SPEC",
    )(fn)
    return click.argument("spec", required=False)(fn)


def checkpoint_option(text: str) -> Callable[[F], F]:
    return click.option(
        "--checkpoint", type=click.Path(path_type=Path, dir_okay=False), default=None, help=text
    )


@dataclasses.dataclass(frozen=True)
class Target:
    address: str
    job: str
    checkpoint: Path | None


@contextlib.contextmanager
def target(
    spec: str | None,
    name: str | None,
    beanstalkd: str | None,
    data_dir: Path | None,
    checkpoint: Path | None = None,
) -> Iterator[Target]:
    """Where an admin command acts: --beanstalkd (and --checkpoint), or a run's --data-dir,
    whose job name the checkpoint tells when neither SPEC nor --job is given."""
    if data_dir is None:
        if beanstalkd is None:
            raise BeanmillError("give --beanstalkd HOST:PORT, or --data-dir of a `beanmill run`")
        yield Target(beanstalkd, resolve_job(spec, name), checkpoint)
        return
    if beanstalkd is not None or checkpoint is not None:
        raise BeanmillError("--data-dir takes the place of --beanstalkd and --checkpoint")
    ckpt = data_dir / datadir.CHECKPOINT
    if spec is None and name is None and ckpt.is_file():
        name = read_snapshot(ckpt).job
    job = resolve_job(spec, name)
    with datadir.queue_of(data_dir) as address:
        yield Target(address, job, ckpt if ckpt.is_file() else None)


tube_option = click.option(
    "--tube",
    "kind",
    type=click.Choice(admin.TUBE_KINDS),
    default="items",
    show_default=True,
    help="which of the job's tubes: results and control hold buried records too",
)


def resolve_job(spec: str | None, name: str | None) -> str:
    """The job name from exactly one of SPEC (loaded for its name) or --job NAME."""
    if (spec is None) == (name is None):
        raise BeanmillError("give exactly one of SPEC or --job NAME")
    return name if name is not None else load_spec(spec or "").name


def _fail_on(problems: tuple[str, ...]) -> None:
    """One error line per job id not acted on; the last one sets the exit status (2)."""
    if problems:
        for problem in problems[:-1]:
            click.echo(f"beanmill: error: {problem}", err=True)
        raise BeanmillError(problems[-1])


def register(group: click.Group) -> None:
    """Add stats, buried, requeue, delete and top to the `beanmill` group."""
    group.add_command(stats)
    group.add_command(buried)
    group.add_command(requeue)
    group.add_command(delete)
    group.add_command(top)
    group.add_command(reset)


@click.command()
@job_options
@click.option("--yes", is_flag=True, help="do not ask for confirmation")
def reset(
    spec: str | None,
    job_name: str | None,
    beanstalkd: str | None,
    data_dir: Path | None,
    yes: bool,
) -> None:
    """Clear a job's tubes (items, results, control, leases) so its name can be used again.

    With --data-dir the run's checkpoint and cursor go too: the next `beanmill run` starts
    the job over. Refused while a role of the job still holds a job."""
    with target(spec, job_name, beanstalkd, data_dir) as t:
        what = f"every queued job of {t.job} on {t.address}"
        if data_dir is not None:
            what += f", and the checkpoint and cursor in {data_dir}"
        if not yes:
            click.confirm(f"delete {what}?", abort=True)
        result = admin.reset(t.address, t.job, data_dir)
    jobs = sum(result.deleted.values())
    click.echo(f"reset {t.job}: deleted {jobs} jobs from {len(result.deleted)} tubes")
    if result.removed:
        click.echo(f"removed {', '.join(sorted(result.removed))} from {data_dir}")


@click.command()
@job_options
@click.option("--json", "as_json", is_flag=True, help="one JSON object")
def stats(
    spec: str | None,
    job_name: str | None,
    beanstalkd: str | None,
    data_dir: Path | None,
    as_json: bool,
) -> None:
    """Per tube: ready, reserved, delayed, buried, total and watching; and the server's
    version, uptime, binlog indexes, connections and TTR timeouts."""
    with target(spec, job_name, beanstalkd, data_dir) as t:
        data = admin.stats(t.address, t.job)
    click.echo(json.dumps(data) if as_json else "\n".join(render.stats_lines(data)))


@click.command()
@job_options
@checkpoint_option("the reducer's checkpoint, where it stores each buried batch's error")
@click.option("--json", "as_json", is_flag=True, help="a JSON list, tracebacks included")
@click.option(
    "--limit", type=click.IntRange(1), default=None, metavar="N", help="show at most N jobs"
)
@click.option("-v", "--verbose", is_flag=True, help="show the traceback summaries")
def buried(
    spec: str | None,
    job_name: str | None,
    beanstalkd: str | None,
    data_dir: Path | None,
    checkpoint: Path | None,
    as_json: bool,
    limit: int | None,
    verbose: bool,
) -> None:
    """Buried jobs of the items tube, each with the error the reducer stored for it.

    beanstalkd cannot list buried jobs, so the list starts from the stored errors (each
    checked to be still buried, with the same batch); without --checkpoint only the oldest
    buried job is shown. Use the job ids with `beanmill requeue --job-id`."""
    with target(spec, job_name, beanstalkd, data_dir, checkpoint) as t:
        report = admin.buried(t.address, t.job, t.checkpoint, limit)
    if as_json:
        every = [*report.jobs, *report.failed_items]
        click.echo(json.dumps([dataclasses.asdict(j) for j in every]))
    else:
        click.echo("\n".join(render.buried_lines(report, verbose)))


@click.command()
@job_options
@checkpoint_option("the reducer's checkpoint: its failed items are requeued too")
@click.option(
    "--job-id",
    "job_ids",
    type=click.IntRange(1),
    multiple=True,
    metavar="ID",
    help="kick this buried job (repeatable; ids from `beanmill buried`)",
)
@click.option(
    "--max",
    "max_jobs",
    type=click.IntRange(1),
    default=None,
    metavar="N",
    help="kick at most N, oldest buried first [default: all]",
)
@tube_option
def requeue(
    spec: str | None,
    job_name: str | None,
    beanstalkd: str | None,
    data_dir: Path | None,
    checkpoint: Path | None,
    job_ids: tuple[int, ...],
    max_jobs: int | None,
    kind: str,
) -> None:
    """Requeue what failed: with a checkpoint (or --data-dir), every failed item as a new
    retry with all its attempts; and buried jobs of the tube: all, --job-id ones, or --max N.

    Fix the cause first. Buried jobs are bodies that could not be used at all (malformed,
    another version, a result rereduce() could not fold): a malformed body fails again for
    sure, `beanmill delete` it instead."""
    if job_ids and max_jobs is not None:
        raise BeanmillError("give --job-id or --max, not both")
    with target(spec, job_name, beanstalkd, data_dir, checkpoint) as t:
        result = admin.requeue(t.address, t.job, job_ids, max_jobs, kind)
        if t.checkpoint is not None and not job_ids and kind == "items":
            retries = admin.requeue_failed_items(t.checkpoint, t.job)
            items = sum(len(r.items) for r in retries)
            click.echo(
                f"requeued {items} failed items in {len(retries)} retry batches: the reducer "
                "puts them at its next commit or start (run the same `beanmill run` again)"
            )
    click.echo(f"kicked {result.kicked} buried jobs on {result.tube}")
    _fail_on(result.problems)


@click.command()
@job_options
@checkpoint_option("the reducer's checkpoint: the deleted jobs' stored errors leave it too")
@click.option(
    "--job-id",
    "job_ids",
    type=click.IntRange(1),
    multiple=True,
    required=True,
    metavar="ID",
    help="delete this buried job (repeatable; ids from `beanmill buried`)",
)
@click.option(
    "--lose-items",
    is_flag=True,
    help="also delete usable batches, whose items the total will then never count",
)
@tube_option
def delete(
    spec: str | None,
    job_name: str | None,
    beanstalkd: str | None,
    data_dir: Path | None,
    checkpoint: Path | None,
    job_ids: tuple[int, ...],
    lose_items: bool,
    kind: str,
) -> None:
    """Delete buried jobs of the items tube for good, e.g. a malformed body.

    Only buried jobs: a ready, reserved or delayed one is work under way. A usable batch
    needs --lose-items: its items are then missing from the total for good, and a job whose
    producer announced its size never completes (stop it with Ctrl-C or `done()`)."""
    with target(spec, job_name, beanstalkd, data_dir, checkpoint) as t:
        result = admin.delete(t.address, t.job, job_ids, t.checkpoint, lose_items, kind)
    line = f"deleted {len(result.deleted)} buried jobs"
    if t.checkpoint is not None:
        line += f", forgot {result.forgotten} stored errors"
    click.echo(line)
    _fail_on(result.problems)


@click.command()
@job_options
@checkpoint_option("the reducer's checkpoint, to show progress")
@click.option(
    "--interval",
    type=click.FloatRange(0.1),
    default=2.0,
    show_default=True,
    metavar="S",
    help="seconds between frames",
)
@click.option(
    "--iterations",
    type=click.IntRange(1),
    default=None,
    metavar="N",
    help="stop after N frames [default: until Ctrl-C]",
)
def top(
    spec: str | None,
    job_name: str | None,
    beanstalkd: str | None,
    data_dir: Path | None,
    checkpoint: Path | None,
    interval: float,
    iterations: int | None,
) -> None:
    """A live view: tubes, jobs put and deleted per second, workers, buried, progress.

    On a terminal the screen is redrawn; otherwise one block is printed per interval, so
    it tails well into a file or journald. Ctrl-C stops."""
    with target(spec, job_name, beanstalkd, data_dir, checkpoint) as t:
        _top(t, interval, iterations)


def _top(t: Target, interval: float, iterations: int | None) -> None:
    name, beanstalkd, checkpoint = t.job, t.address, t.checkpoint
    redraw = sys.stdout.isatty()
    before: tuple[float, admin.Stats, Snapshot | None] | None = None
    frame = 0
    try:
        while iterations is None or frame < iterations:
            now = time.monotonic()
            data = admin.stats(beanstalkd, name)
            snap = admin.checkpoint_of(checkpoint, name) if checkpoint is not None else None
            rates = items_per_s = None
            if before is not None:
                rates = admin.rates(before[1], data, now - before[0])
                if snap is not None and before[2] is not None:
                    items_per_s = max(0, snap.items - before[2].items) / (now - before[0])
            lines = [f"{name} on {beanstalkd} at {time.strftime('%H:%M:%S')}"]
            lines += render.frame(data, rates)
            if snap is not None:
                lines.append(render.progress_line(snap, items_per_s))
            waiting = waiting_at(beanstalkd, name) or []  # a full binlog disk, by role
            lines += [f"waiting: {w.describe(time.time())}" for w in waiting]
            if redraw:
                click.clear()
            click.echo("\n".join(lines) + ("" if redraw else "\n"))
            before, frame = (now, data, snap), frame + 1
            if iterations is None or frame < iterations:
                time.sleep(interval)  # the refresh period, not a wait for some condition
    except KeyboardInterrupt:
        return
