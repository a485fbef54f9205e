"""`beanmill run`'s roles are forks of it: each still its own, named, process."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from beanmill.beanstalk.server import free_port
from beanmill.forkstart import ForkedProcess, start_role
from support import spec_ref, wait_for

PYTHON = [sys.executable, "-P", "-m", "beanmill"]


def test_a_beanmill_command_is_forked_and_its_exit_status_kept() -> None:
    ok = start_role([*PYTHON, "--version"], "version")
    usage = start_role([*PYTHON, "consumer"], "consumer-1")  # no SPEC: click's usage error
    assert isinstance(ok, ForkedProcess)
    assert ok.wait() == 0
    assert usage.wait() == 2


def test_another_command_runs_as_a_fresh_process() -> None:
    proc = start_role([sys.executable, "-c", "raise SystemExit(7)"], "other")
    assert isinstance(proc, subprocess.Popen)
    assert proc.wait() == 7


def test_a_forked_role_is_named_in_ps_and_killed_like_any_process() -> None:
    # nothing listens on the port: the consumer waits in its connect retry until killed
    argv = [
        *PYTHON,
        "consumer",
        spec_ref("sums:Squares"),
        "--beanstalkd",
        f"127.0.0.1:{free_port()}",
        "--connect-retry",
        "60",
    ]
    proc = start_role(argv, "consumer-2")
    cmdline = Path(f"/proc/{proc.pid}/cmdline")
    try:
        wait_for(lambda: b"[consumer-2 of run" in cmdline.read_bytes(), what="the title")
        assert cmdline.read_bytes().startswith(b"beanmill consumer ")
        assert proc.poll() is None
    finally:
        proc.kill()
    assert proc.wait() == -signal.SIGKILL
