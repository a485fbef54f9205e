"""The `beanmill check` command: parse, call check, print what passed and the verdict."""

from __future__ import annotations

import sys

import click

from beanmill import exitcodes, logs
from beanmill.check import DEFAULT_SAMPLE, check_ref


def register(group: click.Group) -> None:
    group.add_command(check)


@click.command()
@click.argument("spec")
@click.option(
    "--sample",
    type=click.IntRange(1),
    default=DEFAULT_SAMPLE,
    show_default=True,
    metavar="N",
    help="map the first N items of items()",
)
def check(spec: str, sample: int) -> None:
    """Dry-run SPEC with no queue, before a long run finds its bugs.

    Runs setup(), maps the first N items (thread_setup() and map() on a worker thread, as in
    a consumer), checks that every value is strict JSON and that rereduce() of partials
    equals reduce() of the whole on random splits, and estimates the run time on one core.
    The last line is `check: ok` (exit 0) or `check: FAILED: <reason>` (exit 4)."""
    logs.configure("warning", "auto", role="check")
    report = check_ref(spec, sample)
    for line in report.lines:
        click.echo(line)
    for problem in report.problems[1:]:
        click.echo(f"problem: {problem}")
    click.echo(report.verdict)
    sys.exit(exitcodes.OK if report.ok else exitcodes.USER_CODE)
