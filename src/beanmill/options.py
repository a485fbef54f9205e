"""The options the role commands share: each one's name, default and help in one place.

`beanmill run` takes most of them too and passes them on to its roles
(supervisor._argv; tests/unit/test_run_argv.py checks that none is dropped).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from beanmill.ending import MIN_ITEMS_TO_STOP
from beanmill.signing import Signer, load_secret
from beanmill.source import DEFAULT_BATCH_SIZE

F = TypeVar("F", bound=Callable[..., Any])


def logging_options(fn: F) -> F:
    fn = click.option(
        "--log-level",
        default="info",
        envvar="BEANMILL_LOG_LEVEL",
        type=click.Choice(["debug", "info", "warning", "error"]),
        show_default=True,
    )(fn)
    fn = click.option(
        "--log-format",
        default="auto",
        envvar="BEANMILL_LOG_FORMAT",
        type=click.Choice(["auto", "json", "console"]),
        help="auto: console on a terminal, JSON lines otherwise",
    )(fn)
    return fn


def beanstalkd_option(required: bool) -> Callable[[F], F]:
    return click.option(
        "--beanstalkd",
        "beanstalkd",
        envvar="BEANMILL_BEANSTALKD",
        required=required,
        metavar="HOST:PORT",
        help="address of beanstalkd (env BEANMILL_BEANSTALKD)",
    )


order_option = click.option(
    "--order",
    type=click.Choice(["sequential", "random"]),
    default="sequential",
    show_default=True,
    help="random: a seeded uniform permutation (sampling)",
)
seed_option = click.option("--seed", type=int, default=None, help="seed of --order random")
ttr_option = click.option(
    "--ttr",
    type=click.IntRange(1),
    default=60,
    show_default=True,
    help="seconds a consumer may hold a batch between touches",
)
high_water_option = click.option(
    "--high-water",
    type=click.IntRange(1),
    default=1000,
    show_default=True,
    help="most ready batches to keep in beanstalkd",
)


def ending_options(fn: F) -> F:
    """End conditions of a sampled run, for `reducer` and `run` alike."""
    fn = click.option(
        "--max-items",
        type=click.IntRange(1),
        default=None,
        help="stop once this many items are applied",
    )(fn)
    fn = click.option(
        "--until-ci",
        type=click.FloatRange(0, min_open=True),
        default=None,
        help="stop when the 95% interval's half-width is at most this",
    )(fn)
    fn = click.option(
        "--until-rel-ci",
        type=click.FloatRange(0, min_open=True),
        default=None,
        help="stop when half-width / |mean| is at most this (e.g. 0.01)",
    )(fn)
    fn = click.option(
        "--until-field",
        default=None,
        metavar="NAME",
        help="with a Fields reducer: only this field's interval decides [default: every field]",
    )(fn)
    fn = click.option(
        "--min-items-to-stop",
        type=click.IntRange(0),
        default=MIN_ITEMS_TO_STOP,
        show_default=True,
        help="no stop on --until-ci/--until-rel-ci before this many items: intervals from "
        "fewer under-cover heavy tails (docs/sampling.md)",
    )(fn)
    return fn


def retry_options(fn: F) -> F:
    """How failing items are retried: for `consumer` and `run` alike."""
    fn = click.option(
        "--map-timeout",
        type=click.FloatRange(0, min_open=True),
        default=None,
        help="seconds one map() may run before its item fails like an exception",
    )(fn)
    fn = click.option(
        "--retry-delay",
        type=click.IntRange(0),
        default=1,
        show_default=True,
        help="seconds before an item's first retry; doubles each attempt",
    )(fn)
    return click.option(
        "--max-attempts",
        type=click.IntRange(1),
        default=3,
        show_default=True,
        help="tries per item before it counts as failed (see `beanmill buried`)",
    )(fn)


connect_retry_option = click.option(
    "--connect-retry",
    type=click.FloatRange(0),
    default=0.0,
    show_default=True,
    help="seconds to keep trying to reach beanstalkd at start before giving up",
)
progress_file_option = click.option(
    "--progress-file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="also append each progress snapshot as a JSON line to this file",
)
secret_file_option = click.option(
    "--secret-file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="sign every body written and bury those without a good tag (HMAC-SHA256 keyed by "
    "this file, mode 0600, the same on every host)",
)
accept_unsigned_ids_option = click.option(
    "--accept-unsigned-ids",
    is_flag=True,
    help="with --secret-file: still map bare item IDs that carry no tag (a foreign producer's)",
)


def seed_of(order: str, seed: int | None) -> int | None:
    """The seed a layout uses: 0 for `--order random` without one, None in order."""
    return (seed if seed is not None else 0) if order == "random" else None


def signer_of(secret_file: Path | None) -> Signer | None:
    return None if secret_file is None else load_secret(secret_file)


rebuild_option = click.option(
    "--rebuild",
    is_flag=True,
    help="after the checkpoint went back in time (a lost -wal, an old copy): accept it, and "
    "have the producer put again every batch it lacks (see docs/operations.md)",
)
batch_option = click.option(
    "--batch-size",
    type=click.IntRange(1),
    default=DEFAULT_BATCH_SIZE,
    show_default=True,
    help="items per job",
)
