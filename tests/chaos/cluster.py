"""A run spread over hosts: which role on which host, and how a test drives and checks it."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from beanmill.beanstalk.server import Beanstalkd
from chaos.hosts import Cluster, Host, in_netns
from specs.sums import squares_answer
from support import beanstalkd_counts, spec_ref, status, wait_for

BEANSTALKD_PORT = 11300
#: Small, so a lost batch comes back within seconds; consumers touch at half of it.
TTR_S = 2
ITEMS = 4000
BATCH = 50


@dataclass
class Mill:
    """beanstalkd on `queue_host`, the reducer (and the producer) on `reducer_host`, one
    consumer on each of `consumer_hosts`: the layout of docs/operations.md."""

    cluster: Cluster
    queue_host: Host
    reducer_host: Host
    consumer_hosts: list[Host]
    server: Beanstalkd
    tmp: Path
    spec: str = spec_ref("sums:Squares")

    @property
    def ckpt(self) -> Path:
        return self.tmp / "ck.sqlite"

    @property
    def env(self) -> dict[str, str]:
        return {"SUMS_ITEMS": str(ITEMS), "SUMS_MAP_DELAY": "0.003"}

    def start_server(self) -> None:
        """beanstalkd, started in its host's namespace on its binlog (again, after a boot)."""
        in_netns(self.queue_host.netns, self.server.start)

    def start_reducer(self) -> subprocess.Popen[bytes]:
        return self.reducer_host.run(
            "reducer", self.spec, "--beanstalkd", self.server.address,
            "--checkpoint", str(self.ckpt), "--commit-interval", "0.2",
            "--connect-retry", "60", env=self.env, cwd=self.tmp,
        )  # fmt: skip

    def start_producer(self) -> None:
        self.reducer_host.run(
            "producer", self.spec, "--beanstalkd", self.server.address,
            "--ttr", str(TTR_S), "--batch-size", str(BATCH),
            "--state", str(self.tmp / "cursor.json"), env=self.env, cwd=self.tmp,
        )  # fmt: skip

    def start_consumer(self, host: Host) -> None:
        host.run(
            "consumer", self.spec, "--beanstalkd", self.server.address,
            "--connect-retry", "60", env=self.env, cwd=self.tmp,
        )  # fmt: skip

    def start_all(self) -> subprocess.Popen[bytes]:
        """Every role on its host; the reducer, whose exit 0 says every batch is counted."""
        reducer = self.start_reducer()
        self.start_producer()
        for host in self.consumer_hosts:
            self.start_consumer(host)
        return reducer

    def counts(self, tube: str) -> dict[str, int]:
        """`stats-tube`, asked from beanstalkd's own host (the tests' namespace has no link)."""

        def ask() -> dict[str, int]:
            return beanstalkd_counts(self.server, tube)

        return in_netns(self.queue_host.netns, ask)

    def wait_for_items(self, least: int, what: str) -> int:
        wait_for(lambda: self.items_done() >= least, 90, what)
        return self.items_done()

    def finish(self, reducer: subprocess.Popen[bytes], timeout: float = 120) -> None:
        """The reducer exits 0 (every batch counted), with the exact total."""
        try:
            rc = reducer.wait(timeout)
        except subprocess.TimeoutExpired:
            rc = None
        assert rc == 0, f"reducer: {rc}; {self.tails()}"
        self.assert_exact()

    def tails(self) -> str:
        """The last lines each process wrote, for a failure's message."""
        hosts = [self.reducer_host, *self.consumer_hosts]
        logs = [log for host in hosts for log in host.logs]
        return "\n".join(f"{log.name}: {log.read_text()[-600:]}" for log in logs)

    def items_done(self) -> int:
        if not self.ckpt.exists():
            return 0
        done: int = status(self.ckpt)["items"]
        return done

    def assert_exact(self) -> None:
        snap = status(self.ckpt)
        assert (snap["items"], snap["total"]) == (ITEMS, squares_answer(ITEMS))
