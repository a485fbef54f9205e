"""Waiting out a full binlog disk: one line a minute, the same command again, stoppable."""

from __future__ import annotations

import threading
from collections.abc import Callable

import greenstalk
import pytest
from structlog.testing import capture_logs

from beanmill.beanstalk import pipeline
from beanmill.beanstalk.binlog_full import BinlogWaits
from beanmill.errors import QueueFull, QueueLost


class FakeTime:
    """A clock that a wait moves forward instead of sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.waited: list[float] = []

    def clock(self) -> float:
        return self.now

    def wait(self, seconds: float) -> bool:
        self.waited.append(seconds)
        self.now += seconds
        return True


def refused(
    times: int, error: type[greenstalk.BeanstalkdError]
) -> tuple[list[int], Callable[[], int]]:
    """A command refused `times` times, then answered 42; the list counts its calls."""
    calls: list[int] = []

    def command() -> int:
        calls.append(1)
        if len(calls) <= times:
            raise error([])
        return 42

    return calls, command


def waits_on(fake: FakeTime, stop: threading.Event | None = None) -> BinlogWaits:
    waits = BinlogWaits(stop or threading.Event(), clock=fake.clock)
    waits.wait = fake.wait  # type: ignore[method-assign]
    return waits


def test_a_refused_put_is_sent_again_until_it_is_stored() -> None:
    fake = FakeTime()
    calls, command = refused(3, greenstalk.OutOfMemoryError)
    with capture_logs() as logs:
        assert waits_on(fake).retried(command, "put", "j.items", "h:1") == 42
    assert len(calls) == 4
    assert fake.waited == [0.1, 0.2, 0.4], "backoff between tries"
    full = [e for e in logs if e["event"] == "beanstalkd_disk_full"]
    assert len(full) == 1
    assert full[0]["hint"] == (
        "beanstalkd cannot write its binlog: its disk is full (OUT_OF_MEMORY on put to "
        "j.items); free space there, then it goes on by itself"
    )
    assert [e["event"] for e in logs][-1] == "beanstalkd_binlog_writable"


def test_the_disk_full_line_is_repeated_at_most_once_a_minute() -> None:
    fake = FakeTime()
    _, command = refused(100, greenstalk.OutOfMemoryError)
    with capture_logs() as logs:
        waits_on(fake).retried(command, "put", "j.results", "h:1")
    minutes = (fake.now - 1000.0) / 60
    lines = [e for e in logs if e["event"] == "beanstalkd_disk_full"]
    assert minutes > 5
    assert len(lines) <= minutes + 1
    assert len(lines) >= minutes - 1, "still said while the wait goes on"


def test_an_internal_error_says_to_restart_beanstalkd() -> None:
    fake = FakeTime()
    _, command = refused(1, greenstalk.InternalError)
    with capture_logs() as logs:
        waits_on(fake).retried(command, "delete", None, "h:1")
    hint = str(logs[0]["hint"])
    assert "INTERNAL_ERROR on delete" in hint and "restart beanstalkd" in hint


def test_a_stop_while_waiting_is_a_queue_lost_that_roles_answer_by_stopping() -> None:
    stop = threading.Event()
    waits = BinlogWaits(stop)
    _, command = refused(100, greenstalk.OutOfMemoryError)
    threading.Timer(0.2, stop.set).start()
    with capture_logs(), pytest.raises(QueueLost, match="disk is full"):
        waits.retried(command, "put", "j.items", "h:1")


def test_without_a_stop_event_a_refusal_is_one_queue_full_line() -> None:
    _, command = refused(1, greenstalk.OutOfMemoryError)
    with pytest.raises(QueueFull, match=r"its disk is full .* free space"):
        BinlogWaits().retried(command, "put", "j.items", "h:1")


def test_a_pipelined_refusal_is_greenstalks_own_error() -> None:
    assert isinstance(pipeline._unexpected([b"OUT_OF_MEMORY"]), greenstalk.OutOfMemoryError)
    assert isinstance(pipeline._unexpected([b"INTERNAL_ERROR"]), greenstalk.InternalError)
    assert isinstance(pipeline._unexpected([b"WHAT"]), greenstalk.UnknownResponseError)
