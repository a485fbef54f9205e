"""Fixtures that start real processes: a beanstalkd on a free loopback port with its own binlog."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from beanmill.beanstalk.server import Beanstalkd, free_port
from support import Procs

# The suite is CI's gate: the same examples every run, so a failure is reproducible and
# never a coin toss. HYPOTHESIS_PROFILE=explore searches afresh. No deadline: an example
# slowed by a busy shared machine is not a wrong answer (speed is for bench/, not tests).
settings.register_profile("beanmill", derandomize=True, deadline=None)
settings.register_profile("explore", derandomize=False, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "beanmill"))


@pytest.fixture
def beanstalkd(tmp_path: Path) -> Iterator[Beanstalkd]:
    """A real beanstalkd; `.restart()` keeps its port and binlog, `.kill()` is a SIGKILL."""
    if shutil.which("beanstalkd") is None:
        pytest.fail("beanstalkd is not installed: apt-get install beanstalkd (.ci/run does)")
    server = Beanstalkd(binlog_dir=tmp_path / "binlog", port=free_port()).start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Procs]:
    p = Procs(tmp_path)
    try:
        yield p
    finally:
        p.cleanup()
