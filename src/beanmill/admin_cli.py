"""The operator commands: stats, buried, requeue, top. Thin: parse, call admin, print."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from beanmill import admin
from beanmill.errors import BeanmillError
from beanmill.jobspec import load_spec

F = TypeVar("F", bound=Callable[..., Any])


def job_options(fn: F) -> F:
    """SPEC or --job NAME: these commands only need the tube names."""
    fn = click.option(
        "--beanstalkd",
        envvar="BEANMILL_BEANSTALKD",
        required=True,
        metavar="HOST:PORT",
        help="address of beanstalkd",
    )(fn)
    fn = click.option(
        "--job", "job_name", default=None, metavar="NAME", help="the job's name, instead of SPEC"
    )(fn)
    fn = click.argument("spec", required=False)(fn)
    return fn


def name_of(spec: str | None, name: str | None) -> str:
    if (spec is None) == (name is None):
        raise BeanmillError("give exactly one of SPEC or --job NAME")
    return name or load_spec(spec or "").name


def _stats_text(data: dict[str, Any]) -> list[str]:
    lines = [
        f"{'tube':<24}{'ready':>9}{'reserved':>10}{'delayed':>9}{'buried':>8}"
        f"{'total':>10}{'workers':>9}"
    ]
    for role, t in data["tubes"].items():
        lines.append(
            f"{data['job'] + '.' + role:<24}{t['jobs-ready']:>9}{t['jobs-reserved']:>10}"
            f"{t['jobs-delayed']:>9}{t['jobs-buried']:>8}{t['total-jobs']:>10}"
            f"{t['watching']:>9}"
        )
    s = data["server"]
    lines.append(
        f"beanstalkd {s['version']} up {s['uptime']}s, binlog files "
        f"{s['binlog-oldest-index']}..{s['binlog-current-index']}, "
        f"{s['current-connections']} connections, {s['job-timeouts']} TTR timeouts"
    )
    return lines


def register(group: click.Group) -> None:
    @group.command()
    @job_options
    @click.option("--json", "as_json", is_flag=True)
    def stats(spec: str | None, job_name: str | None, beanstalkd: str, as_json: bool) -> None:
        """Per tube: ready, reserved, delayed, buried, total, watching; and the server."""
        data = admin.stats(beanstalkd, name_of(spec, job_name))
        click.echo(json.dumps(data) if as_json else "\n".join(_stats_text(data)))

    @group.command()
    @job_options
    @click.option(
        "--checkpoint",
        type=click.Path(path_type=Path),
        default=None,
        help="the reducer's checkpoint, where the errors are stored",
    )
    @click.option("--json", "as_json", is_flag=True)
    @click.option("--verbose", is_flag=True, help="show the traceback summaries")
    def buried(
        spec: str | None,
        job_name: str | None,
        beanstalkd: str,
        checkpoint: Path | None,
        as_json: bool,
        verbose: bool,
    ) -> None:
        """Buried jobs with the error the reducer stored for each."""
        total, jobs = admin.buried(beanstalkd, name_of(spec, job_name), checkpoint)
        if as_json:
            click.echo(json.dumps(admin.as_dicts(jobs)))
            return
        click.echo(f"{total} buried, {len(jobs)} described")
        for j in jobs:
            click.echo(
                f"job {j.job_id}  batch {j.batch}  attempts {j.attempts}  "
                f"{j.reason}  on {j.host or '?'}: {j.exception}"
            )
            if verbose and j.traceback:
                click.echo("    " + j.traceback.replace("\n", "\n    "))

    @group.command()
    @job_options
    @click.option(
        "--job-id", "job_ids", type=int, multiple=True, help="kick this buried job (repeatable)"
    )
    @click.option(
        "--max",
        "most",
        type=click.IntRange(1),
        default=None,
        help="kick at most this many [default: all]",
    )
    def requeue(
        spec: str | None,
        job_name: str | None,
        beanstalkd: str,
        job_ids: tuple[int, ...],
        most: int | None,
    ) -> None:
        """Kick buried jobs back to ready. A kicked batch keeps its attempt count: it gets
        one more try before it is buried again."""
        name = name_of(spec, job_name)
        kicked, problems = admin.requeue(beanstalkd, name, job_ids, most)
        click.echo(f"kicked {kicked} buried jobs on {name}.items")
        if problems:
            raise BeanmillError("; ".join(problems))

    @group.command()
    @job_options
    @click.option("--checkpoint", type=click.Path(path_type=Path), default=None)
    @click.option("--interval", type=click.FloatRange(0.1), default=2.0, show_default=True)
    @click.option(
        "--iterations",
        type=click.IntRange(1),
        default=None,
        help="stop after this many frames [default: until Ctrl-C]",
    )
    def top(
        spec: str | None,
        job_name: str | None,
        beanstalkd: str,
        checkpoint: Path | None,
        interval: float,
        iterations: int | None,
    ) -> None:
        """A live view: tubes, rates, workers, buried, progress."""
        name = name_of(spec, job_name)
        tty = sys.stdout.isatty()
        before: dict[str, Any] | None = None
        frame = 0
        while iterations is None or frame < iterations:
            data = admin.stats(beanstalkd, name)
            lines = _stats_text(data)
            if before is not None:
                dt = max(1e-9, data["at"] - before["at"])
                put = (data["server"]["total-jobs"] - before["server"]["total-jobs"]) / dt
                done = (data["server"]["cmd-delete"] - before["server"]["cmd-delete"]) / dt
                lines.append(f"rates: {put:,.1f} jobs put/s, {done:,.1f} jobs deleted/s")
            if checkpoint is not None:
                lines.append(admin.progress(checkpoint))
            if tty:
                click.clear()
            click.echo(time.strftime("%H:%M:%S ") + "\n".join(lines) + "\n")
            before, frame = data, frame + 1
            if iterations is None or frame < iterations:
                time.sleep(interval)
