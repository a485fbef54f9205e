"""A full disk while the reducer commits: one clear error, nothing lost, exact after a restart."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from beanmill.server import Beanstalkd
from specs.sums import squares_answer
from support import Procs, beanstalkd_counts, finish, spec_ref, start_roles, status, wait_for

SQUARES = spec_ref("sums:Squares")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs: mounting needs root, so elsewhere this skips with that reason."""
    where = tmp_path / "disk"
    where.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(where)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(disk: Path) -> Path:
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError:
        pass  # ENOSPC: the disk is full, as wanted
    finally:
        os.close(fd)
    return filler


def test_a_full_disk_stops_the_reducer_cleanly_and_a_restart_finishes_exactly(
    beanstalkd: Beanstalkd, procs: Procs, tmp_path: Path, small_disk: Path
) -> None:
    ckpt = small_disk / "ck.sqlite"
    env = {"SUMS_ITEMS": "4000", "SUMS_MAP_DELAY": "0.002"}
    start_roles(procs, beanstalkd.address, ckpt, SQUARES, env=env)
    reducer = procs.started[0]
    wait_for(lambda: ckpt.exists() and status(ckpt)["items"] > 0, what="a first commit")
    filler = fill(small_disk)
    rc, _, err = finish(reducer, timeout=60)
    assert rc == 2
    lines = [x for x in err.splitlines() if x.startswith("beanmill: error:")]
    assert len(lines) == 1 and "Free disk space" in lines[0]
    applied = status(ckpt)["items"]
    assert 0 < applied < 4000, "the last good commit is intact and readable"
    results = beanstalkd_counts(beanstalkd, "squares.results")
    wait_for(
        lambda: beanstalkd_counts(beanstalkd, "squares.results")["current-jobs-ready"] > 0,
        what="the unapplied results are still on the queue",
    )
    assert results["total-jobs"] > 0
    filler.unlink()
    again = procs.reducer(SQUARES, beanstalkd.address, ckpt, env=env)
    rc, _, err = finish(again, timeout=120)
    assert rc == 0, err
    snap = status(ckpt)
    assert snap["items"] == 4000 and snap["total"] == squares_answer(4000)
