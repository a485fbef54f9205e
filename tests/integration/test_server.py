"""The private beanstalkd: its stderr goes to a private log file, never to an unread pipe."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import greenstalk
import pytest

from beanmill.beanstalk.server import BINLOG_FILE_BYTES, LOG_NAME, Beanstalkd, free_port
from beanmill.errors import QueueUnavailable


def test_beanstalkds_stderr_is_appended_to_a_private_log_in_the_data_dir(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        # -c is a removed flag: beanstalkd warns about it on stderr and runs on.
        server = Beanstalkd(tmp_path / "binlog", free_port(), extra_args=("-c",))
        server.start()
        server.restart()
        server.stop()
    finally:
        os.umask(old)
    log = tmp_path / LOG_NAME
    assert server.log_path == log
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    assert log.read_text().count("-c flag was removed") == 2, "appended at each start"


def test_a_beanstalkd_that_exits_at_start_says_why_from_its_log(tmp_path: Path) -> None:
    server = Beanstalkd(tmp_path / "binlog", free_port(), extra_args=("-Q",))
    with pytest.raises(QueueUnavailable, match=r"exited at start: .*beanstalkd: unknown flag: -Q"):
        server.start()


def test_a_second_beanstalkd_on_the_same_binlog_says_it_is_locked(tmp_path: Path) -> None:
    first = Beanstalkd(tmp_path / "binlog", free_port()).start()
    try:
        with pytest.raises(QueueUnavailable, match="lock"):
            Beanstalkd(tmp_path / "binlog", free_port()).start()
    finally:
        first.kill()


@pytest.mark.parametrize(
    ("extra", "size"), [((), BINLOG_FILE_BYTES), (("-s", "65536"), 65536)], ids=["ours", "given"]
)
def test_binlog_files_are_small_unless_the_caller_sizes_them(
    tmp_path: Path, extra: tuple[str, ...], size: int
) -> None:
    """beanstalkd fills a new binlog file with zeros before it serves the first put: at its
    10 MiB default that stalled every short run."""
    server = Beanstalkd(tmp_path / "binlog", free_port(), extra_args=extra).start()
    try:
        with greenstalk.Client((server.host, server.port)) as client:
            client.put("x")
        files = sorted((tmp_path / "binlog").glob("binlog.*"))
        assert [f.stat().st_size for f in files] == [size]
    finally:
        server.stop()


@pytest.mark.parametrize("setpriv", [True, False], ids=["setpriv", "preexec_fn"])
def test_a_private_beanstalkd_dies_with_its_starter_even_by_sigkill(
    tmp_path: Path, setpriv: bool
) -> None:
    """`beanmill run` killed by SIGKILL leaves no beanstalkd behind, with util-linux's
    setpriv (the fast start) or without it (a preexec_fn)."""
    hide = "" if setpriv else "shutil.which = lambda n, *a, **k: None if n == 'setpriv' else w(n)"
    code = textwrap.dedent(
        f"""
        import shutil, sys, time
        from pathlib import Path
        w = shutil.which
        {hide}
        from beanmill.beanstalk.server import Beanstalkd, free_port
        server = Beanstalkd(Path(sys.argv[1]), free_port(), die_with_parent=True).start()
        print(server.proc.pid, server.proc.args[0], flush=True)
        time.sleep(60)
        """
    )
    starter = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path / "binlog")], stdout=subprocess.PIPE, text=True
    )
    assert starter.stdout is not None
    pid, program = starter.stdout.readline().split()
    assert program.endswith("setpriv" if setpriv else "beanstalkd")
    assert Path(f"/proc/{pid}").exists()
    starter.kill()
    starter.wait()
    deadline = time.monotonic() + 10
    while _alive(int(pid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(int(pid)), "beanstalkd outlived the process that started it"


def _alive(pid: int) -> bool:
    """Running, not a zombie (it is init's child now, reaped whenever init gets to it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"
