"""Backpressure on results: with the reducer stopped, consumers wait instead of piling up."""

from __future__ import annotations

import time
from pathlib import Path

from beanmill.beanstalk.server import Beanstalkd
from beanmill.consumer import RESULTS_HIGH_WATER
from beanmill.supervisor import RunOptions
from specs.sums import squares_answer
from support import Procs, StderrTail, beanstalkd_counts, finish, spec_ref, status

SQUARES = spec_ref("sums:Squares")
MARK = 20
CONSUMERS = 2


def test_consumers_wait_while_the_results_backlog_is_over_the_high_water_mark(
    beanstalkd: Beanstalkd, procs: Procs, tmp_path: Path
) -> None:
    # 0.2 ms per item: a batch maps in over pacing.GROUP_MAP_S, so none is grouped with
    # others and each batch is one partial on the results tube.
    env = {"SUMS_ITEMS": "4000", "SUMS_MAP_DELAY": "0.0002"}
    address = beanstalkd.address
    procs.beanmill(
        "producer", SQUARES, "--beanstalkd", address, "--state", str(tmp_path / "cursor.json"),
        "--batch-size", "50", env=env,
    )  # fmt: skip
    consumer_args = ("--beanstalkd", address, "--results-high-water", str(MARK))
    consumers = [
        procs.beanmill("consumer", SQUARES, *consumer_args, env=env) for _ in range(CONSUMERS)
    ]
    tails = [StderrTail(c) for c in consumers]
    for tail in tails:
        tail.wait_for("results_backlog_paused")
    paused = next(e for e in tails[0].events() if e["event"] == "results_backlog_paused")
    assert "the reducer is behind or stopped" in paused["hint"]
    # Batches of 50 items are one partial each (see env). Near the mark each consumer
    # checks before it reserves, so at most one partial each lands past the mark; the
    # producer's end record is the one other job.
    most = 0
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        most = max(most, beanstalkd_counts(beanstalkd, "squares.results")["current-jobs-ready"])
        time.sleep(0.05)
    assert MARK < most <= MARK + CONSUMERS + 1
    assert beanstalkd_counts(beanstalkd, "squares.items")["current-jobs-ready"] > 0, (
        "work is left: the consumers are waiting, not idle"
    )

    ckpt = tmp_path / "ck.sqlite"
    reducer = procs.reducer(SQUARES, address, ckpt, env=env)
    for tail in tails:
        tail.wait_for("results_backlog_resumed")
    rc, _, err = finish(reducer, timeout=60)
    assert rc == 0, err
    for tail in tails:
        # One line per pause and one per resume; a slow reducer may cause a second pause.
        pauses = [e["event"] for e in tail.events()].count("results_backlog_paused")
        assert pauses >= 1
        tail.wait_for("results_backlog_resumed", count=pauses)  # each pause ends by itself
    snap = status(ckpt)
    assert snap["items"] == 4000 and snap["total"] == squares_answer(4000)


def test_the_results_high_water_mark_has_one_default() -> None:
    from beanmill.cli import consumer

    option = next(p for p in consumer.params if p.name == "results_high_water")
    assert option.default == RESULTS_HIGH_WATER == RunOptions(Path()).results_high_water
