"""Fixtures for the chaos tests: four hosts on a bridge, with beanstalkd on the first."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from beanmill.beanstalk.server import Beanstalkd
from chaos.cluster import BEANSTALKD_PORT, Mill
from chaos.hosts import Cluster, HostsUnavailable


@pytest.fixture
def mill(tmp_path: Path) -> Iterator[Mill]:
    """Four hosts on a bridge (10.213.1.1-4): beanstalkd on .1 with its own binlog, the
    reducer and producer on .2, consumers on .3 and .4. Removed whatever happens: every
    process on them is SIGKILLed and every namespace deleted (their links go with them)."""
    if shutil.which("beanstalkd") is None:
        pytest.fail("beanstalkd is not installed: apt-get install beanstalkd (.ci/run does)")
    cluster = Cluster()
    try:
        cluster.start()
        hosts = [cluster.add_host() for _ in range(4)]
    except HostsUnavailable as exc:
        cluster.close()
        pytest.skip(f"cannot make hosts in network namespaces here: {exc}")
    server = Beanstalkd(tmp_path / "binlog", BEANSTALKD_PORT, host=hosts[0].address)
    mill = Mill(cluster, hosts[0], hosts[1], hosts[2:], server, tmp_path)
    try:
        mill.start_server()
        yield mill
    finally:
        cluster.close()
        server.kill()
