"""Full disks: the reducer's (one clear error, nothing lost, exact after a restart) and
beanstalkd's binlog disk (every role waits with one line a minute, then goes on by itself)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import greenstalk
import pytest

from beanmill.beanstalk.server import Beanstalkd, free_port
from beanmill.checkpoint import Checkpoint
from specs.sums import squares_answer
from support import (
    Procs,
    StderrTail,
    beanstalkd_counts,
    finish,
    spec_ref,
    start_roles,
    status,
    wait_for,
)

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


@pytest.fixture
def binlog_on_small_disk(small_disk: Path) -> Iterator[Beanstalkd]:
    """beanstalkd with its binlog on the small tmpfs, in 64 KiB files (the default 10 MB would
    not fit one)."""
    server = Beanstalkd(
        binlog_dir=small_disk / "binlog", port=free_port(), extra_args=("-s", "65536")
    ).start()
    try:
        yield server
    finally:
        server.kill()


def waiting_roles(procs: Procs, data: Path, server: Beanstalkd) -> list[dict[str, Any]]:
    """`status --json`'s binlog_full: the roles waiting on beanstalkd's full binlog disk."""
    argv = ["status", "--data-dir", str(data), "--beanstalkd", server.address, "--json"]
    rc, out, err = finish(procs.beanmill(*argv))
    assert rc == 0, err
    waiting: list[dict[str, Any]] = json.loads(out)["binlog_full"]
    return waiting


def disk_full_lines(tail: StderrTail) -> list[dict[str, Any]]:
    return [e for e in tail.events() if e["event"] == "beanstalkd_disk_full"]


def test_a_full_binlog_disk_makes_every_role_wait_and_the_run_goes_on_once_space_is_back(
    binlog_on_small_disk: Beanstalkd, small_disk: Path, procs: Procs, tmp_path: Path
) -> None:
    server = binlog_on_small_disk
    data = tmp_path / "data"
    Checkpoint(data / "checkpoint.sqlite", "squares").close()  # for status, from the start
    filler = fill(small_disk)
    env = {"SUMS_ITEMS": "20000"}
    run = procs.beanmill(
        "run", SQUARES, "--beanstalkd", server.address, "--data-dir", str(data),
        "--batch-size", "20", "--ttr", "2", "--no-check", env=env,
    )  # fmt: skip
    # The producer's puts are refused first, then the consumers' partials (each holding a
    # batch, touched past its 2 s TTR) and the reducer's lease: they all wait.
    tail = StderrTail(run)
    wait_for(
        lambda: {"producer", "consumer"} <= {e["role"] for e in disk_full_lines(tail)},
        timeout=15,
        what="the producer and a consumer to say the disk is full",
    )
    time.sleep(4)  # the wait goes on, longer than the TTR, and the line is not repeated
    lines = disk_full_lines(tail)
    hint = str(lines[0]["hint"])
    assert "disk is full" in hint and "free space" in hint
    pids = [e["pid"] for e in lines]
    assert len(pids) == len(set(pids)), "one line per role in the first minute, not one a try"
    assert run.poll() is None, "nothing crashed or gave up"
    shown = waiting_roles(procs, data, server)
    assert {"producer", "consumer"} <= {w["role"] for w in shown}
    wait_for(
        lambda: {w["pid"] for w in shown} <= {e["pid"] for e in disk_full_lines(tail)},
        what="each role shown waiting to be one that said the disk is full",
    )
    assert all(w["host"] == socket.gethostname() and w["since"] <= time.time() for w in shown)
    top = procs.beanmill(
        "top", "--job", "squares", "--beanstalkd", server.address, "--iterations", "1"
    )
    rc, out, _ = finish(top)
    assert rc == 0 and "waiting: producer pid" in out and "binlog disk" in out

    filler.unlink()  # space is back: nothing else is done, beanstalkd goes on by itself
    wait_for(lambda: waiting_roles(procs, data, server) == [], what="no role waits any more")
    assert run.stdout is not None
    out = run.stdout.read()
    assert run.wait(timeout=60) == 0, tail.text()[-2000:]
    err = tail.text()
    assert f"result: {squares_answer(20000)}" in out
    assert "Traceback" not in err and "role_restarted" not in err
    assert "beanstalkd_lost" not in err
    stats = greenstalk.Client((server.host, server.port), encoding=None)
    try:
        assert stats.stats()["job-timeouts"] == 0, "the batches in hand were kept by touches"
        # beanstalkd still writes its binlog after the full disk: a job put now survives a
        # restart of the server.
        stats.use("after")
        stats.put(b"still logged")
    finally:
        stats.close()
    server.restart()
    assert beanstalkd_counts(server, "after")["current-jobs-ready"] == 1
