"""The `beanmill` command: thin click commands that parse, configure logging and call a role.

click because it is the well-kept standard for composable commands with env-var defaults;
every user-facing failure becomes one `beanmill: error: ...` line and exit status 2.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from beanmill import exitcodes, logs
from beanmill.config import add_env_vars, default_map, describe_sources, find_config, load_config
from beanmill.ending import EndConditions, check_until_field
from beanmill.errors import BeanmillError, UserCodeError
from beanmill.exiting import exit_code, finish
from beanmill.files import file_problem
from beanmill.jobspec import load_spec
from beanmill.lazycli import LazyGroup
from beanmill.options import (
    accept_unsigned_ids_option,
    batch_option,
    beanstalkd_option,
    connect_retry_option,
    ending_options,
    high_water_option,
    logging_options,
    order_option,
    progress_file_option,
    rebuild_option,
    retry_options,
    secret_file_option,
    seed_of,
    seed_option,
    signer_of,
    ttr_option,
)
from beanmill.signals import install_stop_handlers
from beanmill.web import http_address, http_options


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="beanmill")
@click.option(
    "--config",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar="BEANMILL_CONFIG",
    help="TOML file with the same keys as the flags [default: first of ./beanmill.toml, "
    "~/.config/beanmill/config.toml, /etc/beanmill/beanmill.toml]",
)
@click.pass_context
def cli(ctx: click.Context, config: Path | None) -> None:
    """Restartable map/reduce over a mountain of items, on beanstalkd.

    Settings: flag > environment (BEANMILL_<OPTION>) > config file > default.
    """
    path = find_config(config)
    ctx.meta["config_path"] = path
    if path is not None:
        data = load_config(path)
        if data:  # its keys are checked against every command's options
            cli.load_all()
        ctx.default_map = default_map(data, cli, path)


@cli.command(name="config")
@click.argument("commands", nargs=-1)
@click.pass_context
def show_config(ctx: click.Context, commands: tuple[str, ...]) -> None:
    """Print the effective settings of COMMANDS (default: the roles) and where each came from."""
    assert ctx.parent is not None
    path = ctx.parent.meta.get("config_path")
    cli.load_all()
    click.echo(f"# config file: {path or 'none found'}")
    for name in commands or ("run", "producer", "consumer", "reducer"):
        cmd = cli.commands.get(name)
        if cmd is None:
            raise BeanmillError(f"no command {name!r}: see beanmill --help")
        for line in describe_sources(ctx.parent, cmd, name):
            click.echo(line)


@cli.command(epilog=exitcodes.RUN_HELP)
@click.argument("spec")
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="checkpoint, cursor and binlog [default: ./beanmill-data/JOB]",
)
@click.option("--consumers", type=click.IntRange(1), default=2, show_default=True)
@beanstalkd_option(required=False)
@batch_option
@order_option
@seed_option
@click.option(
    "--threads",
    type=click.IntRange(1),
    default=1,
    show_default=True,
    help="map threads per consumer (for I/O-bound maps)",
)
@ttr_option
@high_water_option
@ending_options
@progress_file_option
@click.option(
    "--log-level",
    default="warning",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
)
@click.option("--log-format", default="auto", type=click.Choice(["auto", "json", "console"]))
@retry_options
@click.option("--no-check", is_flag=True, help="skip the quick check of the spec at start")
@click.option(
    "--secret-file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="key of the signed bodies [default: DATA_DIR/secret, made if missing]",
)
@accept_unsigned_ids_option
@http_options
@click.option("--no-live", is_flag=True, help="plain progress lines even on a terminal")
@rebuild_option
def run(
    spec: str,
    data_dir: Path | None,
    consumers: int,
    beanstalkd: str | None,
    batch_size: int,
    order: str,
    seed: int | None,
    threads: int,
    ttr: int,
    high_water: int,
    until_rel_ci: float | None,
    until_ci: float | None,
    max_items: int | None,
    until_field: str | None,
    min_items_to_stop: int,
    progress_file: Path | None,
    log_level: str,
    log_format: str,
    max_attempts: int,
    retry_delay: int,
    map_timeout: float | None,
    no_check: bool,
    secret_file: Path | None,
    accept_unsigned_ids: bool,
    http: str | None,
    http_public: bool,
    no_live: bool,
    rebuild: bool,
) -> None:
    """Run SPEC to the end on this machine (Ctrl-C stops; the same command resumes)."""
    from beanmill.check import checked_spec
    from beanmill.supervisor import RunOptions, run_job

    logs.configure(log_level, log_format, role="run")
    loaded = checked_spec(spec, until_field, quick=not no_check)
    opts = RunOptions(
        data_dir=data_dir or Path("beanmill-data") / loaded.name,
        consumers=consumers,
        beanstalkd=beanstalkd,
        batch_size=batch_size,
        order=order,
        seed=seed_of(order, seed),
        threads=threads,
        ttr=ttr,
        high_water=high_water,
        ending=EndConditions(max_items, until_ci, until_rel_ci, until_field, min_items_to_stop),
        progress_file=progress_file,
        log_level=log_level,
        max_attempts=max_attempts,
        retry_delay=retry_delay,
        map_timeout=map_timeout,
        secret_file=secret_file,
        accept_unsigned_ids=accept_unsigned_ids,
        http=http_address(http, http_public),
        rebuild=rebuild,
        live=not no_live and sys.stdout.isatty(),  # a person watches: not a pipe or journal
    )
    sys.exit(run_job(loaded, opts, install_stop_handlers()))


@cli.command()
@click.argument("spec")
@beanstalkd_option(required=True)
@batch_option
@ttr_option
@click.option(
    "--state",
    type=click.Path(path_type=Path),
    default=None,
    help="cursor file [default: ./beanmill-data/JOB/cursor.json]",
)
@high_water_option
@order_option
@seed_option
@connect_retry_option
@secret_file_option
@rebuild_option
@logging_options
def producer(
    spec: str,
    beanstalkd: str,
    batch_size: int,
    ttr: int,
    state: Path | None,
    high_water: int,
    order: str,
    seed: int | None,
    connect_retry: float,
    secret_file: Path | None,
    rebuild: bool,
    log_level: str,
    log_format: str,
) -> None:
    """Put SPEC's items as batch jobs, resuming from the cursor."""
    from beanmill.producer import ProducerOptions, run_producer

    loaded = load_spec(spec)
    logs.configure(log_level, log_format, role="producer", job=loaded.name)
    opts = ProducerOptions(
        batch_size=batch_size,
        ttr=ttr,
        high_water=high_water,
        order=order,
        seed=seed_of(order, seed),
        connect_retry=connect_retry,
        signer=signer_of(secret_file),
        rebuild=rebuild,
    )
    path = state or Path("beanmill-data") / loaded.name / "cursor.json"
    sys.exit(run_producer(loaded, beanstalkd, path, opts, install_stop_handlers()))


@cli.command()
@click.argument("spec")
@beanstalkd_option(required=True)
@retry_options
@click.option(
    "--threads",
    type=click.IntRange(1),
    default=1,
    show_default=True,
    help="map threads (for I/O-bound maps)",
)
@click.option(
    "--idle-exit", type=float, default=None, help="exit 0 after this many seconds without work"
)
@click.option(
    "--results-high-water",
    type=click.IntRange(1),
    default=5000,
    show_default=True,
    help="wait while the results tube holds more ready partials (the reducer is behind)",
)
@connect_retry_option
@secret_file_option
@accept_unsigned_ids_option
@http_options
@logging_options
def consumer(
    spec: str,
    beanstalkd: str,
    max_attempts: int,
    retry_delay: int,
    threads: int,
    map_timeout: float | None,
    idle_exit: float | None,
    results_high_water: int,
    connect_retry: float,
    secret_file: Path | None,
    accept_unsigned_ids: bool,
    http: str | None,
    http_public: bool,
    log_level: str,
    log_format: str,
) -> None:
    """Reserve, map and reduce SPEC's batches until stopped."""
    from beanmill.consumer import ConsumerOptions, run_consumer

    loaded = load_spec(spec)
    logs.configure(log_level, log_format, role="consumer", job=loaded.name)
    opts = ConsumerOptions(
        max_attempts=max_attempts,
        retry_delay=retry_delay,
        threads=threads,
        map_timeout=map_timeout,
        idle_exit=idle_exit,
        connect_retry=connect_retry,
        results_high_water=results_high_water,
        signer=signer_of(secret_file),
        accept_unsigned_ids=accept_unsigned_ids,
        http=http_address(http, http_public),
    )
    sys.exit(run_consumer(loaded, beanstalkd, opts, install_stop_handlers()))


@cli.command()
@click.argument("spec")
@beanstalkd_option(required=True)
@click.option("--checkpoint", type=click.Path(path_type=Path), required=True)
@click.option(
    "--commit-interval",
    type=float,
    default=2.0,
    show_default=True,
    help="seconds between commits while results keep coming; 5% of it once caught up",
)
@click.option("--progress-interval", type=float, default=5.0, show_default=True)
@click.option("--keep-running", is_flag=True, help="do not exit when complete")
@progress_file_option
@ending_options
@connect_retry_option
@secret_file_option
@http_options
@rebuild_option
@logging_options
def reducer(
    spec: str,
    beanstalkd: str,
    checkpoint: Path,
    commit_interval: float,
    progress_interval: float,
    keep_running: bool,
    progress_file: Path | None,
    until_rel_ci: float | None,
    until_ci: float | None,
    max_items: int | None,
    until_field: str | None,
    min_items_to_stop: int,
    connect_retry: float,
    secret_file: Path | None,
    http: str | None,
    http_public: bool,
    rebuild: bool,
    log_level: str,
    log_format: str,
) -> None:
    """Fold SPEC's partials into the checkpointed total; exit 0 when complete."""
    from beanmill.reducer import ReducerOptions, run_reducer

    loaded = load_spec(spec)
    check_until_field(loaded.reducer, until_field)
    logs.configure(log_level, log_format, role="reducer", job=loaded.name)
    opts = ReducerOptions(
        commit_interval=commit_interval,
        progress_interval=progress_interval,
        exit_when_complete=not keep_running,
        ending=EndConditions(max_items, until_ci, until_rel_ci, until_field, min_items_to_stop),
        progress_file=progress_file,
        connect_retry=connect_retry,
        signer=signer_of(secret_file),
        http=http_address(http, http_public),
        rebuild=rebuild,
    )
    sys.exit(run_reducer(loaded, beanstalkd, checkpoint, opts, install_stop_handlers()))


add_env_vars(cli)
cli.on_load = add_env_vars  # the operator commands, imported when named


def main() -> None:
    try:
        _main()
        code = 0
    except SystemExit as exc:
        code = exit_code(exc)
    finish(code)


def _main() -> None:
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except UserCodeError as exc:
        print(f"beanmill: error in the job spec's code: {exc}", file=sys.stderr)
        sys.exit(exitcodes.USER_CODE)
    except BeanmillError as exc:
        print(f"beanmill: error: {exc}", file=sys.stderr)
        sys.exit(exitcodes.USAGE)
    except OSError as exc:
        if exc.filename is None:
            raise  # not about a path of ours: a bug, with its traceback
        # A data dir, checkpoint, cursor or log file that cannot be made or written (a
        # missing parent, a read-only or full disk): the user's to fix, so one line.
        print(f"beanmill: error: {file_problem(exc)}", file=sys.stderr)
        sys.exit(exitcodes.USAGE)
