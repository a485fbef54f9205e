"""Errors in the user's code and setup are one short line with a named exit status, never a
restart storm; a stray module in the current directory never runs inside a role."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from beanmill import exitcodes
from support import Procs, finish, wait_for

GOOD = """
from beanmill import Job
class Job1(Job):
    name = "usercode"
    def items(self): return range(200)
    def map(self, item): return item
    def reduce(self, values): return sum(values)
    def rereduce(self, partials): return sum(partials)
"""


def spec_file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "userspec.py"
    path.write_text(text)
    return f"{path}:Job1"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (GOOD.replace("return item", "return item +"), "SyntaxError"),
        ("import no_such_module_here\n" + GOOD, "ModuleNotFoundError"),
        (GOOD.replace("return range(200)", "return 1 / 0"), "ZeroDivisionError"),
        (
            GOOD.replace(
                "    def map(", "    def setup(self): raise OSError('no db')\n    def map("
            ),
            "OSError: no db",
        ),
    ],
    ids=["syntax", "import", "items", "setup"],
)
def test_an_error_in_the_spec_is_one_line_at_the_users_file_and_exit_4(
    procs: Procs, tmp_path: Path, text: str, expected: str
) -> None:
    ref = spec_file(tmp_path, text)
    rc, _, err = finish(procs.beanmill("run", ref, "--data-dir", str(tmp_path / "d")))
    assert rc == exitcodes.USER_CODE, err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert expected in lines[0] and "userspec.py:" in lines[0]
    assert "Traceback" not in err


def test_setup_failing_in_a_consumer_ends_run_with_exit_4_without_restarts(
    procs: Procs, tmp_path: Path
) -> None:
    """The quick check is skipped: the consumer itself meets the failing setup()."""
    ref = spec_file(
        tmp_path,
        GOOD.replace("    def map(", "    def setup(self): raise OSError('no db')\n    def map("),
    )
    proc = procs.beanmill("run", ref, "--data-dir", str(tmp_path / "d"), "--no-check")
    rc, _, err = finish(proc, timeout=60)
    assert rc == exitcodes.USER_CODE, err
    assert "setup() of" in err and "OSError: no db" in err
    assert '"role_restarted"' not in err and "Traceback" not in err


def test_an_unwritable_data_dir_is_one_line_and_exit_2(procs: Procs, tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    ref = spec_file(tmp_path, GOOD)
    env = {"HOME": str(tmp_path)}
    if os.geteuid() == 0:  # root writes anywhere: make the path impossible instead
        (tmp_path / "file").write_text("")
        data = tmp_path / "file" / "d"
    else:
        data = locked / "d"
    rc, _, err = finish(procs.beanmill("run", ref, "--data-dir", str(data), env=env))
    assert rc == exitcodes.USAGE
    assert err.strip().splitlines() == [
        line for line in err.strip().splitlines() if line.startswith("beanmill: error: cannot use")
    ]
    assert str(data) in err and "pass a --data-dir you can write" in err


def test_roles_never_import_from_the_current_directory(tmp_path: Path) -> None:
    """A booby-trapped structlog.py in the working directory must not run in any role."""
    marker = tmp_path / "trap-sprung"
    (tmp_path / "structlog.py").write_text(f"open({str(marker)!r}, 'w').write('x')\n")
    ref = spec_file(tmp_path, GOOD)
    script = Path(sys.executable).parent / "beanmill"  # the console script a user runs
    done = subprocess.run(
        [str(script), "run", ref, "--data-dir", str(tmp_path / "d")],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == exitcodes.OK, done.stderr
    assert "result: 19900" in done.stdout
    assert not marker.exists()


def test_one_ctrl_c_at_a_terminal_finishes_the_batches_in_hand_and_exits_130(
    tmp_path: Path,
) -> None:
    """The terminal sends SIGINT to the whole foreground process group: the roles, in groups
    of their own, hear only `run`'s one SIGTERM, so no batch in hand is lost."""
    ref = spec_file(
        tmp_path,
        GOOD.replace("range(200)", "range(100_000)").replace(
            "return item", "__import__('time').sleep(0.002); return item"
        ),
    )
    env = {**os.environ, "BEANMILL_LOG_FORMAT": "json"}
    data = tmp_path / "d"
    proc = subprocess.Popen(
        [sys.executable, "-m", "beanmill", "run", ref, "--data-dir", str(data),
         "--log-level", "info"],
        cwd=tmp_path, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        start_new_session=True,
    )  # fmt: skip
    try:
        wait_for((data / "checkpoint.sqlite").exists, what="the run under way")
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == exitcodes.STOPPED, err
    assert "stopping: finishing the batches in hand; press Ctrl-C again" in out
    assert err.count('"consumer_stopped"') == 2, "both consumers stopped cleanly"
    assert '"role_killed_after_timeout"' not in err


@pytest.mark.parametrize("role", ["reducer", "producer"])
def test_a_checkpoint_or_cursor_that_cannot_be_made_is_one_line_and_exit_2(
    procs: Procs, tmp_path: Path, role: str
) -> None:
    from beanmill.beanstalk.server import Beanstalkd, free_port

    server = Beanstalkd(tmp_path / "binlog", free_port()).start()
    try:
        (tmp_path / "file").write_text("")
        where = tmp_path / "file" / "state"  # under a regular file: no one can make it
        flag = ["--checkpoint", str(where)] if role == "reducer" else ["--state", str(where)]
        ref = spec_file(tmp_path, GOOD)
        rc, _, err = finish(procs.beanmill(role, ref, "--beanstalkd", server.address, *flag))
        assert rc == exitcodes.USAGE
        lines = [x for x in err.splitlines() if not x.startswith("{")]
        assert len(lines) == 1 and lines[0].startswith("beanmill: error: cannot use ")
        assert "Traceback" not in err
    finally:
        server.kill()
