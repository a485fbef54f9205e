"""Pipelined commands against a real beanstalkd: every reply is read, in order, so the
connection stays usable by plain greenstalk calls afterwards."""

from __future__ import annotations

from collections.abc import Iterator

import greenstalk
import pytest

from beanmill.beanstalk import pipeline
from beanmill.beanstalk.server import Beanstalkd
from support import tube_client

TUBE = "pipe"


@pytest.fixture
def client(beanstalkd: Beanstalkd) -> Iterator[greenstalk.Client[bytes]]:
    with tube_client(beanstalkd, TUBE) as c:
        yield c


def reserves_sent(client: greenstalk.Client[bytes]) -> int:
    return int(client.stats()["cmd-reserve-with-timeout"])


def test_put_then_reserve_in_waves_keeps_order_and_stops_at_an_empty_tube(
    client: greenstalk.Client[bytes],
) -> None:
    bodies = [b"job-%d" % i for i in range(300)]
    ids = pipeline.put_many(client, bodies, priority=100, ttr=60)
    assert len(set(ids)) == 300
    first = pipeline.reserve_ready(client, 250)
    assert [j.body for j in first] == bodies[:250]
    rest = pipeline.reserve_ready(client, 100)
    assert [j.body for j in rest] == bodies[250:]
    before = reserves_sent(client)
    assert pipeline.reserve_ready(client, 200) == []
    assert reserves_sent(client) - before == pipeline.FIRST_WAVE, "an empty tube costs a wave"
    assert int(client.stats_tube(TUBE)["current-jobs-reserved"]) == 300


def test_delete_and_touch_count_only_the_jobs_that_are_there(
    client: greenstalk.Client[bytes],
) -> None:
    ids = pipeline.put_many(client, [b"a", b"b", b"c"], priority=100, ttr=60)
    held = [j.id for j in pipeline.reserve_ready(client, 3)]
    assert held == ids
    assert pipeline.touch_many(client, [*held, 999_999]) == 3
    assert pipeline.delete_many(client, [ids[0], 999_999, ids[2]]) == 2
    assert pipeline.delete_many(client, ids) == 1
    assert int(client.stats_tube(TUBE)["total-jobs"]) == 3
    assert int(client.stats_tube(TUBE)["current-jobs-reserved"]) == 0


def test_a_body_over_the_max_job_size_raises_after_the_others_are_in(
    client: greenstalk.Client[bytes],
) -> None:
    limit = int(client.stats()["max-job-size"])
    with pytest.raises(greenstalk.JobTooBigError):
        pipeline.put_many(client, [b"small", b"x" * (limit + 1), b"also"], priority=1, ttr=60)
    jobs = pipeline.reserve_ready(client, 10)
    assert [j.body for j in jobs] == [b"small", b"also"], "the connection is still in step"
