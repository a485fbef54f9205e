"""One reducer per job, from any host: a second is refused, a successor takes over at once."""

from __future__ import annotations

import signal
from pathlib import Path

from beanmill import exitcodes
from beanmill.beanstalk.server import Beanstalkd
from specs.sums import squares_answer
from support import Procs, finish, spec_ref, start_roles, status, wait_for

SQUARES = spec_ref("sums:Squares")


def test_a_second_reducer_for_the_same_job_is_refused_even_with_another_checkpoint(
    beanstalkd: Beanstalkd, procs: Procs, tmp_path: Path
) -> None:
    env = {"SUMS_ITEMS": "3000", "SUMS_MAP_DELAY": "0.001"}
    ckpt = tmp_path / "ck.sqlite"
    start_roles(procs, beanstalkd.address, ckpt, SQUARES, env=env)
    first = procs.started[0]
    wait_for(lambda: ckpt.exists() and status(ckpt)["items"] > 0, what="the first reducer works")
    second = procs.reducer(SQUARES, beanstalkd.address, tmp_path / "other.sqlite", env=env)
    rc, _, err = finish(second)
    assert rc == exitcodes.USAGE
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "another reducer" in lines[0] and "holds the lease" in lines[0]
    assert not (tmp_path / "other.sqlite").exists(), "refused before it opened a checkpoint"
    rc, _, err = finish(first, timeout=120)
    assert rc == 0, err
    assert status(ckpt)["total"] == squares_answer(3000) and status(ckpt)["items"] == 3000


def test_a_reducer_killed_hard_is_replaced_at_once_and_the_total_stays_exact(
    beanstalkd: Beanstalkd, procs: Procs, tmp_path: Path
) -> None:
    env = {"SUMS_ITEMS": "3000", "SUMS_MAP_DELAY": "0.001"}
    ckpt = tmp_path / "ck.sqlite"
    start_roles(procs, beanstalkd.address, ckpt, SQUARES, env=env)
    first = procs.started[0]
    wait_for(lambda: ckpt.exists() and status(ckpt)["items"] > 0, what="the first reducer works")
    first.send_signal(signal.SIGKILL)
    first.wait()
    successor = procs.reducer(SQUARES, beanstalkd.address, ckpt, env=env)
    rc, _, err = finish(successor, timeout=120)
    assert rc == 0, err
    assert status(ckpt)["total"] == squares_answer(3000) and status(ckpt)["items"] == 3000
