"""The three roles as step functions, driven in-process against a real beanstalkd: what
driver.py does for them in production, one step at a time, with the clock passed in."""

from __future__ import annotations

import io
import os
import threading
from pathlib import Path

import pytest

from beanmill import exitcodes, pacing
from beanmill.beanstalk.lease import LeaseHeld
from beanmill.beanstalk.server import Beanstalkd
from beanmill.consumer import Consumer, ConsumerOptions
from beanmill.jobspec import load_spec
from beanmill.producer import Producer, ProducerOptions
from beanmill.reducer import Reducer, ReducerOptions
from specs.sums import squares_answer
from support import spec_ref

STEPS = 10_000


def steps_until_done(role: Producer | Consumer | Reducer, *, clock: float = 0.0) -> int:
    """Call step(now) until the role says it is done; the number of steps taken."""
    for n in range(1, STEPS):
        clock += 1.0
        if role.step(clock) is not None:
            return n
    raise AssertionError("never done")


def test_producer_consumer_and_reducer_steps_count_every_item_exactly(
    beanstalkd: Beanstalkd, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SUMS_ITEMS", "230")
    monkeypatch.setattr(pacing, "GROUP_MAP_S", 0.0)  # one batch per step, to count them
    spec = load_spec(spec_ref("sums:Squares"))
    stop = threading.Event()
    address = beanstalkd.address

    producer = Producer(spec, address, tmp_path / "c.json", ProducerOptions(batch_size=50), stop)
    assert producer.start() is None
    assert steps_until_done(producer) == 2, "five batches in one round trip, then the end"
    assert producer.cursor.finished and producer.cursor.items_put == 230
    assert producer.finish(stopped=False) == exitcodes.OK
    producer.close()

    consumer = Consumer(spec, address, ConsumerOptions(idle_exit=0.5), stop)
    assert consumer.start() is None
    consumer.idle_since = 0.0
    assert steps_until_done(consumer) == 6, "five batches, then an idle step"
    assert consumer.jobs_done == 5
    consumer.finish(stopped=False)
    consumer.close()

    reducer = Reducer(spec, address, tmp_path / "ck.sqlite", ReducerOptions(), stop, io.StringIO())
    assert reducer.start() is None
    assert steps_until_done(reducer, clock=1e9) >= 1
    assert reducer.snap.complete and reducer.snap.total == squares_answer(230)
    assert reducer.finish(stopped=False) == exitcodes.OK
    reducer.close()


def test_a_second_reducer_object_is_refused_while_the_first_holds_the_job(
    beanstalkd: Beanstalkd, tmp_path: Path
) -> None:
    spec = load_spec(spec_ref("sums:Squares"))
    stop = threading.Event()
    out = io.StringIO()
    first = Reducer(spec, beanstalkd.address, tmp_path / "a.sqlite", ReducerOptions(), stop, out)
    try:
        with pytest.raises(LeaseHeld, match=f"pid {os.getpid()}"):
            Reducer(spec, beanstalkd.address, tmp_path / "b.sqlite", ReducerOptions(), stop, out)
    finally:
        first.close()
