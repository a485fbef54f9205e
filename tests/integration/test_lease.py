"""The lease: one holder per tube from any host, given back at once when the holder dies, and
never held twice, even by acquirers racing on an empty tube or across a beanstalkd restart."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import greenstalk
import pytest

from beanmill.beanstalk.connection import connect
from beanmill.beanstalk.lease import Holder, Lease, LeaseHeld, LeaseLost, lease_tube
from beanmill.beanstalk.server import Beanstalkd
from beanmill.errors import QueueUnavailable
from support import wait_for

TUBE = lease_tube("squares", "reducer")

HOLDER_SCRIPT = """
import sys, time
from beanmill import logs
from beanmill.beanstalk.lease import Lease
logs.configure(fmt="json")
lease = Lease(sys.argv[1], sys.argv[2])
lease.acquire()
print("held", flush=True)
time.sleep(120)
"""


@contextmanager
def leased(address: str, **kwargs: object) -> Iterator[Lease]:
    lease = Lease(address, TUBE, **kwargs)  # type: ignore[arg-type]
    lease.acquire()
    try:
        yield lease
    finally:
        lease.release()


def counts(address: str, tube: str = TUBE) -> tuple[int, int, int]:
    """(ready, reserved, other) jobs of a tube."""
    client = connect(address)
    try:
        stats = client.stats_tube(tube)
    except greenstalk.NotFoundError:
        return 0, 0, 0
    finally:
        client.close()
    other = stats["current-jobs-delayed"] + stats["current-jobs-buried"]
    return stats["current-jobs-ready"], stats["current-jobs-reserved"], other


def refused(address: str) -> LeaseHeld:
    with pytest.raises(LeaseHeld) as info:
        Lease(address, TUBE).acquire()
    return info.value


def test_a_second_acquire_is_refused_naming_the_holder(beanstalkd: Beanstalkd) -> None:
    holder = Holder(host="host-a", pid=4242)
    with leased(beanstalkd.address, holder=holder):
        message = str(refused(beanstalkd.address))
        assert "another reducer (pid 4242 on host-a, since " in message
        assert TUBE in message and "stop it first" in message
        assert counts(beanstalkd.address) == (0, 1, 0)
    assert counts(beanstalkd.address) == (0, 0, 0)


def test_the_lease_of_a_sigkilled_holder_is_taken_over_at_once(
    beanstalkd: Beanstalkd,
) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER_SCRIPT, beanstalkd.address, TUBE],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "held\n"
        assert f"pid {proc.pid} on " in str(refused(beanstalkd.address))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        started = time.monotonic()
        lease = Lease(beanstalkd.address, TUBE)
        wait_for(lambda: _try(lease), timeout=5.0, what="the successor's acquire")
        assert time.monotonic() - started < 1.0  # no TTR to wait out
        assert lease.holder_now() == lease.holder
        lease.release()
    finally:
        proc.kill()
        proc.wait()


def _try(lease: Lease) -> bool:
    try:
        lease.acquire()
    except LeaseHeld:
        return False
    return True


def test_a_released_lease_can_be_acquired_again(beanstalkd: Beanstalkd) -> None:
    first = Lease(beanstalkd.address, TUBE)
    first.acquire()
    first.release()
    assert counts(beanstalkd.address) == (0, 0, 0)
    assert counts(beanstalkd.address, f"{TUBE}.holder") == (0, 0, 0)
    with leased(beanstalkd.address) as second:
        second.renew()
        refused(beanstalkd.address)
    first.acquire()
    first.renew()
    first.release()


def race(address: str, racers: int) -> tuple[list[Lease], list[str]]:
    """Acquirers on their own connections, let go at one moment; what each one got."""
    leases = [Lease(address, TUBE) for _ in range(racers)]
    start = threading.Barrier(racers)
    outcome: list[str] = []

    def acquire(lease: Lease) -> None:
        start.wait()
        try:
            lease.acquire()
            outcome.append("won")
        except LeaseHeld:
            outcome.append("held")

    threads = [threading.Thread(target=acquire, args=(lease,)) for lease in leases]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return leases, outcome


@pytest.mark.parametrize("stray", [0, 1, 2], ids=["empty", "one ready job", "two strays"])
def test_racing_acquirers_never_both_win_and_leave_one_job(
    beanstalkd: Beanstalkd, stray: int
) -> None:
    """Four threads, each with its own connection, race 50 times: one wins each round."""
    for _ in range(50):
        client = connect(beanstalkd.address, use=TUBE)
        for _ in range(stray):
            client.put(b"stray")  # from a crashed acquirer, or a lease given back
        client.close()
        leases, outcome = race(beanstalkd.address, racers=4)
        assert sorted(outcome) == ["held", "held", "held", "won"]
        assert counts(beanstalkd.address) == (0, 1, 0)
        (winner,) = (lease for lease in leases if lease.held)
        assert winner.holder_now() == winner.holder
        for lease in leases:
            lease.release()
        assert counts(beanstalkd.address) == (0, 0, 0)


def test_the_holder_reacquires_after_a_beanstalkd_restart(beanstalkd: Beanstalkd) -> None:
    with leased(beanstalkd.address) as lease:
        beanstalkd.restart()
        assert counts(beanstalkd.address) == (1, 0, 0)  # given back as ready by the replay
        lease.renew()  # notices the broken connection and takes the lease again
        assert lease.held and counts(beanstalkd.address) == (0, 1, 0)
        refused(beanstalkd.address)
        beanstalkd.restart()
        lease.reacquire()
        lease.renew()
        refused(beanstalkd.address)


def test_a_holder_is_told_when_another_took_the_lease_during_a_restart(
    beanstalkd: Beanstalkd,
) -> None:
    first = Lease(beanstalkd.address, TUBE, holder=Holder(host="host-a"))
    first.acquire()
    beanstalkd.restart()
    with leased(beanstalkd.address, holder=Holder(host="host-b", pid=7)):
        with pytest.raises(LeaseLost, match=r"another reducer \(pid 7 on host-b"):
            first.renew()
        assert not first.held
    # Held and given back in between: the first holder still must not go on.
    with pytest.raises(LeaseLost, match="another process held it in the meantime"):
        first.reacquire()
    assert counts(beanstalkd.address) == (1, 0, 0)
    with leased(beanstalkd.address):
        pass


def test_a_holder_whose_ttr_passed_is_told_it_lost_the_lease(beanstalkd: Beanstalkd) -> None:
    first = Lease(beanstalkd.address, TUBE)
    first.acquire()
    # What beanstalkd does when the TTR passes: the job goes back to ready. (Waiting for a
    # real TTR is not reliable: beanstalkd 1.12 can put off the expiry of a job whose
    # holder's connection is idle.)
    assert first._client is not None and first._job is not None
    first._client.release(greenstalk.Job(first._job, b""))
    second = Lease(beanstalkd.address, TUBE)
    second.acquire()
    with pytest.raises(LeaseLost, match="its TTR passed"):
        first.renew()
    with pytest.raises(LeaseLost):
        first.renew()
    assert counts(beanstalkd.address) == (0, 1, 0)
    second.release()


def test_renew_without_beanstalkd_is_queue_unavailable_then_recovers(
    beanstalkd: Beanstalkd,
) -> None:
    with leased(beanstalkd.address) as lease:
        beanstalkd.stop()
        with pytest.raises(QueueUnavailable):
            lease.renew()
        with pytest.raises(QueueUnavailable):
            lease.renew()
        beanstalkd.start()
        lease.renew()
        assert lease.held
