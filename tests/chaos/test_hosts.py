"""Machines lost and found: four hosts in network namespaces on one bridge (see conftest.py),
beanstalkd on one, the reducer on another, a consumer on each of the other two. Each test
ends with every item counted exactly once.

beanstalkd 1.12 drops a connection's TTR timer when its timer fires in the same microsecond
as the job's deadline (prottick() reads the clock, conn_timeout() reads it again and finds
the deadline not yet passed, and nothing schedules the connection again until its next
command). A live consumer's next command sets that right; a connection that never sends
another one keeps its batch reserved for good. Where a host is gone, the tests apply the
operator's remedy from docs/operations.md: `ss -K dst HOST` on beanstalkd's host.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable

from chaos.cluster import TTR_S, Mill
from support import wait_for


def waited(seconds: float) -> Callable[[], bool]:
    """A condition that holds once `seconds` have passed: time is what these tests wait out
    (a TTR), never what they assert."""
    until = time.monotonic() + seconds
    return lambda: time.monotonic() >= until


def test_a_consumer_host_cut_off_past_the_ttr_then_healed_counts_each_item_once(
    mill: Mill,
) -> None:
    """Cut off mid-batch, its job either goes to the other host after the TTR (and the
    healed consumer's touch meets NOT_FOUND) or, where beanstalkd lost the timer, stays with
    it; either way the healed consumer goes on, without a traceback, to a clean exit."""
    reducer = mill.start_all()
    cut = mill.consumer_hosts[0]
    mill.wait_for_items(600, "both consumer hosts work")
    mill.cluster.partition(cut)
    before = mill.items_done()
    past_ttr = waited(3 * TTR_S)
    mill.wait_for_items(before + 300, "the other consumer host goes on alone")
    wait_for(past_ttr, 60, "three TTRs of the cut")
    mill.cluster.heal(cut)
    mill.finish(reducer)
    consumer = cut.procs[0]
    assert consumer.poll() is None, f"the healed consumer died: {mill.tails()}"
    consumer.terminate()
    assert consumer.wait(60) == 0
    assert "Traceback" not in cut.logs[0].read_text()


def test_a_consumer_host_that_vanishes_holding_batches_costs_nothing(mill: Mill) -> None:
    """The host is cut off, then its processes are SIGKILLed and its namespace deleted: no
    FIN ever reaches beanstalkd. Its batches come back after their TTR, or, where beanstalkd
    1.12 lost the connection's timer, once the remedy `ss -K dst HOST` closes the lost
    connections (applied here after two TTRs, as an operator would)."""
    reducer = mill.start_all()
    gone = mill.consumer_hosts[0]
    mill.wait_for_items(600, "both consumer hosts work")
    mill.cluster.vanish(gone)
    wait_for(waited(2 * TTR_S), 60, "two TTRs")
    mill.queue_host.ss_kill(gone.address)
    mill.finish(reducer)


def test_the_reducer_host_cut_off_then_healed_counts_each_item_once(mill: Mill) -> None:
    reducer = mill.start_all()
    mill.wait_for_items(600, "the reducer host commits")
    mill.cluster.partition(mill.reducer_host)
    wait_for(
        lambda: mill.counts("squares.results").get("current-jobs-ready", 0) >= 20,
        60,
        "results to pile up while the reducer is cut off",
    )
    mill.cluster.heal(mill.reducer_host)
    mill.finish(reducer)
    assert reducer.returncode == 0


def test_beanstalkds_host_restarted_on_its_binlog_counts_each_item_once(mill: Mill) -> None:
    """Every process on beanstalkd's host is SIGKILLed and the host comes back with a fresh
    kernel (no connection survives); beanstalkd starts again on the same binlog dir, and
    every role reconnects by itself."""
    reducer = mill.start_all()
    mill.wait_for_items(600, "the run is under way")
    mill.cluster.reboot(mill.queue_host)
    mill.server.kill()  # reaps the process the reboot killed
    mill.start_server()
    mill.finish(reducer)
    for host in mill.consumer_hosts:
        assert host.procs[0].poll() is None, mill.tails()
        assert '"beanstalkd_reconnected"' in host.logs[0].read_text()


def test_hosts_are_removed_whatever_happens(mill: Mill) -> None:
    names = {mill.cluster.switch, *(h.netns for h in mill.cluster.hosts)}
    mill.cluster.close()
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not names & {line.split()[0] for line in listed.splitlines() if line}
