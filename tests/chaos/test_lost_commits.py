"""A checkpoint that went back in time (its -wal lost after a SIGKILL of the reducer) is
refused, and `--rebuild` brings the total back to exact, also after a SIGKILL mid-rebuild."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from beanmill.beanstalk.server import Beanstalkd
from beanmill.signing import create_secret
from specs.sums import squares_answer
from support import Procs, StderrTail, finish, spec_ref, status

SQUARES = spec_ref("sums:Squares")
ITEMS = 2000
ENV = {"SUMS_ITEMS": str(ITEMS), "SUMS_MAP_DELAY": "0.004"}


def reducer_argv(address: str, ckpt: Path, *extra: str) -> list[str]:
    return [
        "reducer", SQUARES, "--beanstalkd", address, "--checkpoint", str(ckpt),
        "--commit-interval", "0.2", *extra,
    ]  # fmt: skip


def producer(procs: Procs, address: str, cursor: Path, env: dict[str, str] | None = None) -> int:
    """The producer, run to its end; its exit code."""
    argv = ["producer", SQUARES, "--beanstalkd", address, "--state", str(cursor)]
    rc, _, err = finish(procs.beanmill(*argv, "--batch-size", "40", env=ENV | (env or {})), 120)
    assert '"rebuild_served"' in err or rc != 0, err[-2000:]
    return rc


def lose_commits(procs: Procs, address: str, data: Path, *signed: str) -> tuple[Path, Path]:
    """Every role as its own process, with the files of a `run` data dir; the reducer is
    SIGKILLed after its 4th commit and its -wal deleted: the checkpoint goes back to before
    its first commit, while the results those commits applied are gone from the queue."""
    ckpt, cursor = data / "checkpoint.sqlite", data / "cursor.json"
    crash = {"BEANMILL_CRASH_AT": "reducer.after_commit:4"}
    reducer = procs.beanmill(*reducer_argv(address, ckpt, *signed), env=ENV | crash)
    argv = ["producer", SQUARES, "--beanstalkd", address, "--state", str(cursor), *signed]
    first = procs.beanmill(*argv, "--batch-size", "40", env=ENV)
    for _ in range(2):
        procs.beanmill("consumer", SQUARES, "--beanstalkd", address, *signed, env=ENV)
    rc, _, err = finish(reducer, timeout=120)
    assert rc == -signal.SIGKILL, err[-2000:]
    assert 0 < status(ckpt)["items"] < ITEMS
    assert finish(first, timeout=120)[0] == 0
    for suffix in ("-wal", "-shm"):
        ckpt.with_name(ckpt.name + suffix).unlink(missing_ok=True)
    return ckpt, cursor


def refused(procs: Procs, argv: list[str]) -> str:
    rc, _, err = finish(procs.beanmill(*argv, env=ENV), timeout=60)
    assert rc == 2, err[-2000:]
    lines = [x for x in err.splitlines() if x.startswith("beanmill: error:")]
    assert len(lines) == 1 and "was rolled back" in lines[0] and "--rebuild" in lines[0]
    return lines[0]


def assert_exact(ckpt: Path) -> None:
    snap = status(ckpt)
    assert snap["complete"] and snap["items"] == ITEMS
    assert snap["total"] == squares_answer(ITEMS)
    assert snap["rebuild_due"] is False


def test_a_checkpoint_that_lost_its_wal_is_refused_and_rebuild_reaches_the_exact_total(
    beanstalkd: Beanstalkd, procs: Procs, tmp_path: Path
) -> None:
    ckpt, cursor = lose_commits(procs, beanstalkd.address, tmp_path)
    refused(procs, reducer_argv(beanstalkd.address, ckpt))
    refused(procs, ["status", "--checkpoint", str(ckpt), "--json"])
    rebuild = procs.beanmill(*reducer_argv(beanstalkd.address, ckpt, "--rebuild"), env=ENV)
    tail = StderrTail(rebuild)
    tail.wait_for("rebuild_requested")
    assert status(ckpt)["rebuild_due"] is True
    assert producer(procs, beanstalkd.address, cursor) == 0  # a plain rerun serves it
    assert rebuild.wait(timeout=120) == 0, tail.text()[-2000:]
    assert_exact(ckpt)


@pytest.mark.parametrize("role", ["reducer", "producer"])
def test_a_sigkill_during_the_rebuild_then_a_rerun_reaches_the_exact_total(
    role: str, beanstalkd: Beanstalkd, procs: Procs, tmp_path: Path
) -> None:
    ckpt, cursor = lose_commits(procs, beanstalkd.address, tmp_path)
    crash = {"BEANMILL_CRASH_AT": f"{role}.after_commit:2"} if role == "reducer" else {}
    rebuild = procs.beanmill(*reducer_argv(beanstalkd.address, ckpt, "--rebuild"), env=ENV | crash)
    tail = StderrTail(rebuild)
    tail.wait_for("rebuild_requested")
    if role == "producer":
        dies = {"BEANMILL_CRASH_AT": "producer.after_rebuild_put:5"}
        assert producer(procs, beanstalkd.address, cursor, dies) == -signal.SIGKILL
        assert producer(procs, beanstalkd.address, cursor) == 0
        assert rebuild.wait(timeout=120) == 0, tail.text()[-2000:]
    else:
        assert producer(procs, beanstalkd.address, cursor) == 0
        assert rebuild.wait(timeout=120) == -signal.SIGKILL, tail.text()[-2000:]
        assert status(ckpt)["rebuild_due"] is True
        again = procs.beanmill(*reducer_argv(beanstalkd.address, ckpt), env=ENV)
        rc, _, err = finish(again, timeout=120)
        assert rc == 0, err[-2000:]
        assert '"rebuild_requested"' in err, "the rerun resumed the rebuild"
    assert_exact(ckpt)


def test_run_rebuild_reaches_the_exact_total_after_a_lost_wal(
    beanstalkd: Beanstalkd, procs: Procs, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    create_secret(data / "secret")  # the key `run` signs with: the roles above use it too
    signed = ("--secret-file", str(data / "secret"))
    ckpt, _ = lose_commits(procs, beanstalkd.address, data, *signed)
    argv = ["run", SQUARES, "--data-dir", str(data), "--beanstalkd", beanstalkd.address]
    argv += ["--batch-size", "40", "--no-check"]
    refused(procs, argv)
    rc, out, err = finish(procs.beanmill(*argv, "--rebuild", env=ENV), timeout=180)
    assert rc == 0, err[-2000:]
    assert f"result: {squares_answer(ITEMS)}" in out
    assert '"rebuild_served"' in err
    assert_exact(ckpt)
