"""`beanmill run`'s roles are forks of it: each still its own, named, process.

The forks are made in a fresh interpreter: this test process may hold threads of earlier
tests, and then start_role rightly starts fresh interpreters instead."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from beanmill.beanstalk.server import free_port
from beanmill.forkstart import start_role
from support import spec_ref


def in_fresh_python(code: str, *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return proc.stdout.strip().splitlines()[-1]


def test_a_beanmill_command_is_forked_and_its_exit_status_kept() -> None:
    out = in_fresh_python(
        """
        import sys
        from beanmill.forkstart import start_role
        python = [sys.executable, "-P", "-m", "beanmill"]
        ok = start_role([*python, "--version"], "version")
        usage = start_role([*python, "consumer"], "consumer-1")  # no SPEC: usage error
        print(type(ok).__name__, ok.wait(), usage.wait())
        """
    )
    assert out == "ForkedProcess 0 2"


def test_another_command_runs_as_a_fresh_process() -> None:
    proc = start_role([sys.executable, "-c", "raise SystemExit(7)"], "other")
    assert isinstance(proc, subprocess.Popen)
    assert proc.wait() == 7


def test_a_forked_role_is_named_in_ps_and_killed_like_any_process() -> None:
    # nothing listens on the port: the consumer waits in its connect retry until killed
    out = in_fresh_python(
        """
        import sys, time
        from pathlib import Path
        from beanmill.forkstart import start_role
        argv = [sys.executable, "-P", "-m", "beanmill", "consumer", sys.argv[1],
                "--beanstalkd", sys.argv[2], "--connect-retry", "60"]
        proc = start_role(argv, "consumer-2")
        cmdline = Path(f"/proc/{proc.pid}/cmdline")
        deadline = time.monotonic() + 30
        while not cmdline.read_bytes().startswith(b"beanmill ") and time.monotonic() < deadline:
            time.sleep(0.01)
        title = cmdline.read_bytes().split(b"\\0")[0].decode()
        alive = proc.poll() is None
        proc.kill()
        print(alive, proc.wait(), title)
        """,
        spec_ref("sums:Squares"),
        f"127.0.0.1:{free_port()}",
    )
    alive, code, title = out.split(" ", 2)
    assert (alive, code) == ("True", "-9")
    assert title.startswith("beanmill consumer ")
    assert title.rsplit(" [", 1)[1].startswith("consumer-2 of run ")
