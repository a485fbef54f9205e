"""Stop signals: the handler only records the request; a normal thread logs it."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from beanmill import signals
from beanmill.signals import StopRequested, StopSignals

DEADLINE_S = 10.0


def wait_for(condition: Callable[[], object], what: str) -> None:
    """Poll `condition()` until it holds, or fail after DEADLINE_S."""
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.01)


def test_signal_handler_sets_the_event_without_logging() -> None:
    stops = StopSignals()
    with capture_logs() as logs:
        stops.handler(signal.SIGTERM, None)
        assert logs == []
        assert stops.event.is_set()
        assert stops.event.wait(0)
        assert stops.signum == signal.SIGTERM

        relay = stops.start_relay()
        relay.join(DEADLINE_S)
        assert not relay.is_alive()
    assert logs == [{"event": "stop_requested", "signal": "SIGTERM", "log_level": "info"}]


class ThreadRecordingLog:
    """Stands in for the module's logger and notes which thread each event came from."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def info(self, event: str, **kw: object) -> None:
        self.events.append((event, threading.current_thread().name))


def test_stop_requested_is_logged_once_from_the_relay_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    recorder = ThreadRecordingLog()
    monkeypatch.setattr(signals, "log", recorder)
    stops = StopSignals()
    relay = stops.start_relay()
    waiter_woke = threading.Event()

    def waiter() -> None:
        if stops.event.wait(DEADLINE_S):
            waiter_woke.set()

    waiting = threading.Thread(target=waiter, daemon=True)
    waiting.start()
    stops.handler(signal.SIGINT, None)
    assert ("stop_requested", threading.current_thread().name) not in recorder.events

    wait_for(lambda: recorder.events, "the relay thread to log")
    relay.join(DEADLINE_S)
    assert recorder.events == [("stop_requested", "stop-signals")]
    # A thread blocked in wait() when the signal came is woken by the relay, not its timeout.
    waiting.join(DEADLINE_S)
    assert waiter_woke.is_set()


def test_handler_raises_stop_requested_inside_an_interruptible_block() -> None:
    stops = StopSignals()
    with pytest.raises(StopRequested), stops.interruptible():
        stops.handler(signal.SIGTERM, None)
    assert stops.event.is_set()
    with pytest.raises(StopRequested), stops.interruptible():
        pass


LOOP = textwrap.dedent(
    """
    import sys

    import structlog

    from beanmill.logs import configure
    from beanmill.signals import install_stop_handlers

    configure(fmt="json")
    log = structlog.get_logger()
    stop = install_stop_handlers()
    print("ready", flush=True)
    ticks = 0
    # Log and wait on the stop event as fast as possible, so the signal lands while the main
    # thread holds the logger's or the event's lock.
    while not stop.is_set():
        log.info("tick", n=ticks)
        stop.wait(0.0005)
        ticks += 1
    log.info("loop_stopped", ticks=ticks)
    """
)


@pytest.mark.parametrize("round_", range(3))
def test_process_in_a_busy_loop_exits_cleanly_on_sigterm(tmp_path: Path, round_: int) -> None:
    stderr_path = tmp_path / "stderr.jsonl"
    with stderr_path.open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-c", LOOP], stdout=subprocess.PIPE, stderr=stderr, text=True
        )
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline() == "ready\n"
            wait_for(lambda: b'"tick"' in stderr_path.read_bytes(), "the loop to log")
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=DEADLINE_S) == 0
        finally:
            proc.kill()
            proc.wait()
    events = [json.loads(line)["event"] for line in stderr_path.read_text().splitlines()]
    # The loop may end before the relay thread logs; the line is still written before exit.
    assert events.count("stop_requested") == 1
    assert "loop_stopped" in events
