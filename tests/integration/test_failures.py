"""Failing maps, slow maps, lost servers and bad addresses, against a real beanstalkd."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import greenstalk

from beanmill import exitcodes
from beanmill.beanstalk.server import Beanstalkd, free_port
from specs.sums import squares_answer
from support import Procs, beanstalkd_counts, finish, spec_ref, start_roles, status, wait_for

FLAKY = spec_ref("sums:Flaky")


def test_a_failing_item_is_retried_then_kept_as_failed_and_its_batch_counts(
    beanstalkd: Beanstalkd, procs: Procs, tmp_path: Path
) -> None:
    ckpt = tmp_path / "ck.sqlite"
    env = {"SUMS_ITEMS": "500", "FLAKY_ITEMS": "123"}
    procs.beanmill(
        "producer",
        FLAKY,
        "--beanstalkd",
        beanstalkd.address,
        "--batch-size",
        "50",
        "--state",
        str(tmp_path / "cursor.json"),
        env=env,
    )
    consumer = procs.beanmill(
        "consumer",
        FLAKY,
        "--beanstalkd",
        beanstalkd.address,
        "--max-attempts",
        "3",
        "--retry-delay",
        "0",
        env=env,
    )
    reducer = procs.reducer(FLAKY, beanstalkd.address, ckpt, env=env)
    rc, out, err = finish(reducer, timeout=60)
    assert rc == exitcodes.FAILED_ITEMS, err
    snap = status(ckpt)
    assert (snap["complete"], snap["items"], snap["failed_items"]) == (True, 499, 1)
    assert snap["total"] == squares_answer(500) - 123 * 123
    assert beanstalkd_counts(beanstalkd, "flaky.items").get("current-jobs-buried", 0) == 0
    assert "finished with 1 failed items" in out
    consumer.send_signal(signal.SIGTERM)
    rc, _, err = finish(consumer)
    assert rc == 0
    events = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    retries = [e for e in events if e["event"] == "items_failed_retrying"]
    failed = [e for e in events if e["event"] == "items_failed"]
    assert [(e["attempt"], e["items"], e["batch"]) for e in retries] == [
        (1, 1, "s50-2"),
        (2, 1, "s50-2~"),
    ]
    assert len(failed) == 1 and failed[0]["item"] == "123"
    assert "item 123 is cursed" in failed[0]["error"] and failed[0]["batch"] == "s50-2~~"


def test_a_batch_longer_than_its_ttr_is_kept_alive_by_touches(
    beanstalkd: Beanstalkd, procs: Procs, tmp_path: Path
) -> None:
    """3 items x 1.2 s per batch with TTR 2 s: without touches the job would time out."""
    ckpt = tmp_path / "ck.sqlite"
    slow = spec_ref("sums:Slow")
    env = {"SUMS_ITEMS": "6", "SLOW_S": "1.2"}
    start_roles(
        procs,
        beanstalkd.address,
        ckpt,
        consumers=2,
        env=env,
        spec=slow,
        producer_args=("--batch-size", "3", "--ttr", "2"),
    )
    rc, _, err = finish(procs.started[0], timeout=60)
    assert rc == 0, err
    assert status(ckpt)["total"] == squares_answer(6)
    client = greenstalk.Client((beanstalkd.host, beanstalkd.port))
    assert client.stats()["job-timeouts"] == 0
    client.close()


def test_consumers_and_reducer_survive_a_beanstalkd_restart(
    beanstalkd: Beanstalkd, procs: Procs, tmp_path: Path
) -> None:
    ckpt = tmp_path / "ck.sqlite"
    env = {"SUMS_ITEMS": "4000", "SUMS_MAP_DELAY": "0.001"}
    start_roles(procs, beanstalkd.address, ckpt, spec_ref("sums:Squares"), env=env)
    wait_for(lambda: ckpt.exists() and status(ckpt)["items"] > 0, what="some progress")
    beanstalkd.kill()
    time.sleep(1.0)  # the outage itself: the roles must ride it out
    beanstalkd.start()
    rc, _, err = finish(procs.started[0], timeout=120)
    assert rc == 0, err
    assert status(ckpt)["total"] == squares_answer(4000)
    consumer_err = procs.started[2]
    consumer_err.send_signal(signal.SIGTERM)
    _, _, cerr = finish(consumer_err)
    assert '"beanstalkd_lost"' in cerr and '"beanstalkd_reconnected"' in cerr


def test_sigterm_stops_a_consumer_cleanly_with_exit_0(beanstalkd: Beanstalkd, procs: Procs) -> None:
    consumer = procs.beanmill("consumer", FLAKY, "--beanstalkd", beanstalkd.address)
    wait_for(
        lambda: beanstalkd_counts(beanstalkd, "flaky.items").get("current-watching") == 1,
        what="consumer watching",
    )
    consumer.send_signal(signal.SIGTERM)
    rc, _, err = finish(consumer, timeout=10)
    assert rc == 0, err
    assert '"consumer_stopped"' in err


def test_a_wrong_address_is_one_clear_line_and_exit_2(procs: Procs) -> None:
    port = free_port()
    for role in ("consumer", "reducer", "producer"):
        extra = ["--checkpoint", "ck.sqlite"] if role == "reducer" else []
        proc = procs.beanmill(role, FLAKY, "--beanstalkd", f"127.0.0.1:{port}", *extra)
        rc, _, err = finish(proc)
        assert rc == 2
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("beanmill: error: nothing listens at")
    proc = procs.beanmill("consumer", FLAKY, "--beanstalkd", "no-port-here")
    rc, _, err = finish(proc)
    assert rc == 2 and "is not HOST:PORT" in err


def test_a_map_that_hangs_past_map_timeout_fails_its_item_and_the_rest_goes_on(
    beanstalkd: Beanstalkd, procs: Procs, tmp_path: Path
) -> None:
    hang = spec_ref("sums:Hang")
    ckpt = tmp_path / "ck.sqlite"
    env = {"SUMS_ITEMS": "300", "HANG_ITEM": "42"}
    address = ["--beanstalkd", beanstalkd.address]
    procs.beanmill(
        "producer",
        hang,
        *address,
        "--batch-size",
        "50",
        "--state",
        str(tmp_path / "c.json"),
        env=env,
    )
    consumer = procs.beanmill(
        "consumer", hang, *address, "--map-timeout", "1", "--max-attempts", "1", env=env
    )
    reducer = procs.beanmill(
        "reducer", hang, *address, "--checkpoint", str(ckpt), "--commit-interval", "0.2", env=env
    )
    assert finish(reducer, timeout=60)[0] == exitcodes.FAILED_ITEMS
    snap = status(ckpt)
    assert (snap["items"], snap["failed_items"]) == (299, 1)
    assert snap["total"] == squares_answer(300) - 42 * 42
    consumer.send_signal(signal.SIGTERM)
    rc, _, err = finish(consumer, timeout=15)
    assert rc == 0, "a hung map thread does not keep the consumer from exiting"
    failed = [json.loads(x) for x in err.splitlines() if '"items_failed"' in x]
    assert len(failed) == 1 and "--map-timeout 1s" in failed[0]["error"]


def test_connect_retry_waits_for_a_beanstalkd_that_is_still_starting(
    procs: Procs, tmp_path: Path
) -> None:
    """What `run` relies on when it restarts a role while it restarts beanstalkd too."""
    server = Beanstalkd(tmp_path / "binlog", free_port())
    consumer = procs.beanmill(
        "consumer", FLAKY, "--beanstalkd", server.address, "--connect-retry", "20"
    )
    time.sleep(1.0)  # the outage the consumer must ride out
    assert consumer.poll() is None, "still trying, not failed"
    server.start()
    try:
        wait_for(
            lambda: beanstalkd_counts(server, "flaky.items").get("current-watching") == 1,
            what="the consumer connected",
        )
        consumer.send_signal(signal.SIGTERM)
        assert finish(consumer)[0] == 0
    finally:
        server.kill()
