"""`beanmill run` passes its options on to the roles: every argv it builds parses as that
role's command, and every option they share arrives with run's value, not a default."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click
import pytest

from beanmill.cli import cli
from beanmill.ending import EndConditions
from beanmill.jobspec import load_spec
from beanmill.supervisor import RunOptions, _argv
from support import spec_ref

#: RunOptions fields that are run's own, not a role's option.
RUN_ONLY = {"data_dir", "consumers", "beanstalkd", "ending"}


def unusual(tmp_path: Path) -> RunOptions:
    """Every option set away from its default, so a dropped one cannot pass unseen."""
    return RunOptions(
        data_dir=tmp_path,
        consumers=3,
        batch_size=77,
        order="random",
        seed=9,
        threads=5,
        ttr=33,
        high_water=44,
        ending=EndConditions(
            max_items=1234,
            until_ci=0.5,
            until_rel_ci=0.01,
            until_field="mean",
            min_items_to_stop=4321,
        ),
        progress_file=tmp_path / "p.jsonl",
        log_level="debug",
        progress_interval=0.7,
        max_attempts=6,
        retry_delay=4,
        map_timeout=2.5,
        results_high_water=321,
        secret_file=tmp_path / "secret",
        accept_unsigned_ids=True,
        rebuild=True,
    )


@pytest.mark.parametrize("role", ["producer", "consumer", "reducer"])
def test_run_builds_an_argv_each_role_parses_with_run_s_values(role: str, tmp_path: Path) -> None:
    spec = load_spec(spec_ref("sums:Squares"))
    opts = unusual(tmp_path)
    argv = _argv(role, spec, "127.0.0.1:1", opts)
    assert argv[1:4] == ["-P", "-m", "beanmill"] and argv[4] == role
    command = cli.commands[role]
    ctx = command.make_context(role, argv[5:])  # raises on any flag the role lacks
    params = ctx.params
    assert params["spec"] == spec.ref and params["beanstalkd"] == "127.0.0.1:1"
    shared = {f.name for f in dataclasses.fields(RunOptions)} - RUN_ONLY
    passed = {name for name in shared if name in params}
    for name in passed:
        value = getattr(opts, name)
        assert params[name] == value, f"{role} --{name.replace('_', '-')}"
    if role == "reducer":
        for end in dataclasses.fields(EndConditions):
            assert params[end.name] == getattr(opts.ending, end.name), end.name
    # Every option of run that the role also has must be among those passed on.
    role_options = {p.name for p in command.params if isinstance(p, click.Option)}
    run_options = {p.name for p in cli.commands["run"].params if isinstance(p, click.Option)}
    missing = (role_options & run_options & shared) - passed - {"log_format"}
    assert not missing, f"run does not pass {sorted(missing)} to the {role}"
