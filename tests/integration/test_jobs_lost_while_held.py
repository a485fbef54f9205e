"""A consumer whose batch was handed out again while it held it (its host cut off past the
TTR): its next touch meets NOT_FOUND, and it drops that job instead of crashing or touching
it for ever. Driven in-process against a real beanstalkd."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import greenstalk
import pytest

from beanmill.beanstalk.server import Beanstalkd
from beanmill.consumer import Consumer, ConsumerOptions
from beanmill.jobspec import load_spec
from support import spec_ref, tube_client, wait_for

TUBE = "squares.items"


@pytest.fixture
def consumer(beanstalkd: Beanstalkd) -> Iterator[Consumer]:
    spec = load_spec(spec_ref("sums:Squares"))
    held = Consumer(spec, beanstalkd.address, ConsumerOptions(), threading.Event())
    try:
        yield held
    finally:
        held.close()


@pytest.fixture
def other(beanstalkd: Beanstalkd) -> Iterator[greenstalk.Client[bytes]]:
    """Another consumer's connection."""
    with tube_client(beanstalkd, TUBE) as client:
        yield client


def taken_by_another(consumer: Consumer, other: greenstalk.Client[bytes], job_id: int) -> None:
    """Wait out the job's TTR until beanstalkd hands it out again, then take and finish it.

    beanstalkd 1.12 may drop the holder's TTR timer (see tests/chaos/test_hosts.py): any
    command on the holder's connection schedules it again, so each poll sends one."""

    def released() -> bool:
        consumer.queue.stats_tube(TUBE)
        return other.stats_job(job_id)["state"] == "ready"

    wait_for(released, 30, "the job's TTR to run out")
    job = other.reserve(timeout=5)
    assert job.id == job_id
    other.delete(job)


def test_a_touch_that_meets_not_found_drops_that_job_and_keeps_the_others(
    consumer: Consumer, other: greenstalk.Client[bytes]
) -> None:
    lost_id = other.put(b"7", ttr=1)
    kept_id = other.put(b"8", ttr=60)
    lost, kept = consumer.queue.reserve(timeout=5), consumer.queue.reserve(timeout=5)
    assert lost is not None and kept is not None
    assert (lost.id, kept.id) == (lost_id, kept_id)
    consumer.hand.hold([lost, kept])
    consumer.keep_alive()  # learns the TTR while both are held
    taken_by_another(consumer, other, lost_id)
    consumer.hand.last_touch = 0.0  # half the TTR has passed, as far as the consumer knows
    consumer.keep_alive()
    assert [job.id for job in consumer.hand.jobs] == [kept_id]
    consumer.hand.last_touch = 0.0
    consumer.keep_alive()
    assert [job.id for job in consumer.hand.jobs] == [kept_id]
    assert other.stats_job(kept_id)["state"] == "reserved"


def test_a_job_gone_before_its_first_touch_is_dropped_without_a_crash(
    consumer: Consumer, other: greenstalk.Client[bytes]
) -> None:
    job_id = other.put(b"7", ttr=1)
    job = consumer.queue.reserve(timeout=5)
    assert job is not None and job.id == job_id
    taken_by_another(consumer, other, job_id)
    consumer.hand.hold([job])
    consumer.keep_alive()  # its TTR cannot be read: the job is gone
    consumer.hand.last_touch = 0.0
    consumer.keep_alive()
    assert consumer.hand.jobs == []
