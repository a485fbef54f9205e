"""Settings precedence: flag > environment > config file > default, and loud typos."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

import beanmill.consumer
from beanmill.cli import cli
from beanmill.consumer import ConsumerOptions
from support import spec_ref

SQUARES = spec_ref("sums:Squares")


def effective(tmp_path: Path, toml: str, *args: str, env: dict[str, str] | None = None) -> str:
    path = tmp_path / "beanmill.toml"
    path.write_text(toml)
    result = CliRunner().invoke(cli, ["--config", str(path), "config", *args], env=env or {})
    assert result.exit_code == 0, result.output
    return result.output


def line(output: str, key: str) -> str:
    return next(x for x in output.splitlines() if x.startswith(key + " "))


def test_each_setting_comes_from_the_strongest_source(tmp_path: Path) -> None:
    toml = 'batch-size = 500\nbeanstalkd = "10.0.0.5:11300"\n[consumer]\nthreads = 4\n'
    out = effective(tmp_path, toml, "consumer", "producer", env={"BEANMILL_THREADS": "8"})
    assert line(out, "producer.batch_size") == "producer.batch_size = 500  (file)"
    assert line(out, "consumer.beanstalkd") == "consumer.beanstalkd = '10.0.0.5:11300'  (file)"
    assert line(out, "consumer.threads") == "consumer.threads = 8  (env BEANMILL_THREADS)"
    assert line(out, "consumer.max_attempts") == "consumer.max_attempts = 3  (default)"
    env = {"BEANMILL_BEANSTALKD": "127.0.0.1:9"}
    out = effective(tmp_path, toml, "consumer", env=env)
    assert "'127.0.0.1:9'  (env BEANMILL_BEANSTALKD)" in line(out, "consumer.beanstalkd")


def test_a_flag_beats_the_environment_and_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "beanmill.toml"
    path.write_text("[consumer]\nmax-attempts = 7\n")
    seen: list[ConsumerOptions] = []

    def fake_run(spec: object, address: str, opts: ConsumerOptions, stop: object) -> int:
        seen.append(opts)
        return 0

    monkeypatch.setattr(beanmill.consumer, "run_consumer", fake_run)
    args = ["--config", str(path), "consumer", SQUARES, "--beanstalkd", "127.0.0.1:1"]
    env = {"BEANMILL_MAX_ATTEMPTS": "5"}
    for extra, expected in (([], 5), (["--max-attempts", "2"], 2)):
        result = CliRunner().invoke(cli, [*args, *extra], env=env)
        assert result.exit_code == 0, result.output
        assert seen.pop().max_attempts == expected
    result = CliRunner().invoke(cli, args, env={})
    assert seen.pop().max_attempts == 7


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("batch-sise = 5\n", "unknown setting 'batch-sise'"),
        ("[consumr]\nthreads = 2\n", "unknown section [consumr]"),
        ("[consumer]\nbatch-size = 2\n", "[consumer] has no setting 'batch-size'"),
        ("batch-size = \n", "is not valid TOML"),
    ],
)
def test_a_bad_config_file_is_one_clear_error(tmp_path: Path, toml: str, message: str) -> None:
    path = tmp_path / "beanmill.toml"
    path.write_text(toml)
    result = CliRunner().invoke(cli, ["--config", str(path), "config"])
    assert result.exit_code != 0
    assert message in str(result.exception)
