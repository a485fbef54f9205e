"""`beanmill run`: private beanstalkd, every role, Ctrl-C, and the same command to resume."""

from __future__ import annotations

import signal
from pathlib import Path

from beanmill import exitcodes
from specs.sums import squares_answer
from support import Procs, finish, spec_ref, status, wait_for

SQUARES = spec_ref("sums:Squares")


def run_args(data: Path) -> list[str]:
    return ["run", SQUARES, "--data-dir", str(data), "--consumers", "2", "--batch-size", "50"]


def test_run_starts_its_own_beanstalkd_and_prints_the_exact_result(
    procs: Procs, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    rc, out, err = finish(procs.beanmill(*run_args(data), env={"SUMS_ITEMS": "3000"}))
    assert rc == 0, err
    assert f"result: {squares_answer(3000)}" in out
    assert (data / "binlog").is_dir(), "the private beanstalkd kept its binlog in the data dir"
    rc, out, _ = finish(procs.beanmill(*run_args(data), env={"SUMS_ITEMS": "3000"}))
    assert rc == 0
    assert "already finished" in out and f"result: {squares_answer(3000)}" in out


def test_ctrl_c_then_the_same_command_resumes_to_the_same_answer(
    procs: Procs, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    env = {"SUMS_ITEMS": "6000", "SUMS_MAP_DELAY": "0.001"}
    first = procs.beanmill(*run_args(data), env=env)
    ckpt = data / "checkpoint.sqlite"
    wait_for(lambda: ckpt.exists() and status(ckpt)["items"] >= 500, what="some progress")
    first.send_signal(signal.SIGINT)
    rc, out, err = finish(first)
    assert rc == exitcodes.STOPPED, err
    assert "press Ctrl-C again to stop now" in out
    assert "run the same command again to resume" in out
    stopped_at = status(ckpt)["items"]
    assert 0 < stopped_at < 6000
    rc, out, err = finish(procs.beanmill(*run_args(data), env=env), timeout=120)
    assert rc == 0, err
    assert "resuming" in out and f"result: {squares_answer(6000)}" in out
    assert status(ckpt)["items"] == 6000
