"""`beanmill run` on a terminal draws one live line; through a pipe it prints plain lines."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

from specs.sums import squares_answer
from support import Procs, finish, spec_ref

SQUARES = spec_ref("sums:Squares")
ITEMS = 3000
#: A bar as tqdm draws it: between pipes, blocks (UTF-8) or `#` (ASCII), spaces for the rest.
BAR = re.compile(r"\d+%\|[█▏▎▍▌▋▊▉# ]+\| ")


def run_args(data: Path, *more: str) -> list[str]:
    return [
        "run", SQUARES, "--data-dir", str(data), "--consumers", "2", "--batch-size", "50", *more,
    ]  # fmt: skip


def run_on_a_terminal(
    args: list[str], env: dict[str, str], timeout: float = 120
) -> tuple[int, str]:
    """`beanmill ARGS` with stdout and stderr on a pseudo-terminal 120 columns wide."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, "-m", "beanmill", *args],
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=follower,
        env={**os.environ, "PYTHONIOENCODING": "utf-8", **env},
    )
    os.close(follower)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            try:
                chunk = os.read(leader, 65536)
            except OSError as exc:  # EIO: every writer closed the terminal
                if exc.errno != errno.EIO:
                    raise
                break
            if not chunk:
                break
            chunks.append(chunk)
        rc = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(leader)
    return rc, b"".join(chunks).decode(errors="replace")


def test_on_a_terminal_run_draws_a_bar_that_ends_at_the_exact_total(tmp_path: Path) -> None:
    env = {"SUMS_ITEMS": str(ITEMS), "SUMS_MAP_DELAY": "0.0005", "BEANMILL_LOG_FORMAT": "json"}
    rc, out = run_on_a_terminal(run_args(tmp_path / "data"), env)
    assert rc == 0, out[-2000:]
    frames = [f for f in re.split(r"[\r\n]", out) if f.startswith("[squares]")]
    assert frames, out[-2000:]
    assert all(BAR.search(f) for f in frames), frames
    assert f" {ITEMS}/{ITEMS} items" in frames[-1] and "100%" in frames[-1], frames[-1]
    assert f"result: {squares_answer(ITEMS)}" in out
    assert "items (" not in out, "no plain progress line on a terminal"
    assert (tmp_path / "data" / "run.log").is_file()


def test_no_live_on_a_terminal_prints_the_plain_lines(tmp_path: Path) -> None:
    env = {"SUMS_ITEMS": str(ITEMS), "BEANMILL_LOG_FORMAT": "json"}
    rc, out = run_on_a_terminal(run_args(tmp_path / "data", "--no-live"), env)
    assert rc == 0, out[-2000:]
    assert not BAR.search(out)
    assert f"[squares] complete | {ITEMS:,}/{ITEMS:,} items (100.0%)" in out


def test_through_a_pipe_run_prints_the_plain_lines(procs: Procs, tmp_path: Path) -> None:
    proc = procs.beanmill(*run_args(tmp_path / "data"), env={"SUMS_ITEMS": str(ITEMS)})
    rc, out, err = finish(proc, timeout=120)
    assert rc == 0, err
    assert not BAR.search(out) and "\r" not in out
    assert f"[squares] complete | {ITEMS:,}/{ITEMS:,} items (100.0%)" in out
    assert f"result: {squares_answer(ITEMS)}" in out
    assert not (tmp_path / "data" / "run.log").exists()


def test_when_sampling_the_bar_runs_to_the_target_and_shows_the_estimate(tmp_path: Path) -> None:
    example = Path(__file__).parents[2] / "examples" / "sampled_mean.py"
    args = [
        "run", f"{example}:RecordSize", "--data-dir", str(tmp_path / "data"),
        "--order", "random", "--seed", "3", "--until-rel-ci", "0.01", "--batch-size", "100",
    ]  # fmt: skip
    rc, out = run_on_a_terminal(args, {"SAMPLED_CYCLES": "2442", "BEANMILL_LOG_FORMAT": "json"})
    assert rc == 0, out[-2000:]
    frames = [f for f in re.split(r"[\r\n]", out) if f.startswith("[recordsize]")]
    last = frames[-1]
    n = json.loads(out.split("result: ", 1)[1].splitlines()[0])["n"]
    assert f" {n}/{n} items" in last and "100%" in last, "the end condition was the target"
    assert re.search(r"est \d+(\.\d+)?±\d", last), last
    assert f"/{4096 * 2442} items" not in out, "no bar over the whole population"
