"""Files that `beanmill run` writes are private whatever the umask."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from beanmill.beanstalk.server import LOG_NAME
from support import Procs, finish, spec_ref

SQUARES = spec_ref("sums:Squares")


def test_the_progress_file_and_beanstalkds_log_are_private_under_umask_0(
    procs: Procs, tmp_path: Path
) -> None:
    data, progress = tmp_path / "data", tmp_path / "progress.jsonl"
    old = os.umask(0)  # inherited by `run`, its roles and its beanstalkd
    try:
        run = procs.beanmill(
            "run", SQUARES, "--data-dir", str(data), "--batch-size", "100",
            "--progress-file", str(progress), env={"SUMS_ITEMS": "500"},
        )  # fmt: skip
        rc, _, err = finish(run, timeout=60)
    finally:
        os.umask(old)
    assert rc == 0, err
    assert progress.read_text().strip(), "progress lines were written"
    for path in (progress, data / LOG_NAME):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
