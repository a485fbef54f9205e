"""The operator's day on a live beanstalkd: stats, buried (with stored errors), requeue, top."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import greenstalk

from beanmill.server import Beanstalkd
from specs.sums import squares_answer
from support import Procs, beanstalkd_counts, finish, spec_ref, status, wait_for

FLAKY = spec_ref("sums:Flaky")


def admin(procs: Procs, *args: str) -> tuple[int, str, str]:
    return finish(procs.beanmill(*args))


def test_find_requeue_and_finish_a_buried_batch(
    beanstalkd: Beanstalkd, procs: Procs, tmp_path: Path
) -> None:
    ckpt = tmp_path / "ck.sqlite"
    address = ["--beanstalkd", beanstalkd.address]
    env = {"SUMS_ITEMS": "500", "FLAKY_ITEMS": "123"}
    procs.beanmill(
        "producer",
        FLAKY,
        *address,
        "--batch-size",
        "50",
        "--state",
        str(tmp_path / "c.json"),
        env=env,
    )
    consumer = procs.beanmill(
        "consumer", FLAKY, *address, "--max-attempts", "2", "--retry-delay", "0", env=env
    )
    reducer = procs.beanmill(
        "reducer", FLAKY, *address, "--checkpoint", str(ckpt), "--commit-interval", "0.2", env=env
    )
    greenstalk.Client((beanstalkd.host, beanstalkd.port), use="flaky.items").put("{oops")
    wait_for(
        lambda: ckpt.exists() and status(ckpt)["errors"] == 2 and status(ckpt)["items"] == 450,
        what="the failing batch and the malformed body buried, errors stored",
    )
    consumer.send_signal(signal.SIGTERM)
    assert finish(consumer)[0] == 0

    rc, out, err = admin(procs, "stats", "--job", "flaky", *address, "--json")
    assert rc == 0, err
    data = json.loads(out)
    assert data["tubes"]["items"]["jobs-buried"] == 2
    assert data["server"]["binlog-current-index"] >= data["server"]["binlog-oldest-index"] > 0

    rc, out, err = admin(procs, "buried", FLAKY, *address, "--checkpoint", str(ckpt), "--json")
    assert rc == 0, err
    jobs = {j["reason"]: j for j in json.loads(out)}
    assert set(jobs) == {"failed", "malformed"}
    assert "item 123 is cursed" in jobs["failed"]["exception"]
    assert jobs["failed"]["batch"] == "s50-2" and jobs["failed"]["attempts"] == 2
    assert "not valid JSON" in jobs["malformed"]["exception"]

    rc, out, err = admin(
        procs, "requeue", "--job", "flaky", *address, "--job-id", str(jobs["failed"]["job_id"])
    )
    assert rc == 0 and "kicked 1 buried jobs on flaky.items" in out, err
    assert beanstalkd_counts(beanstalkd, "flaky.items")["current-jobs-ready"] == 1
    rc, _, err = admin(procs, "requeue", "--job", "flaky", *address, "--job-id", "999999")
    assert rc == 2 and "job 999999 does not exist" in err

    fixed = procs.beanmill("consumer", FLAKY, *address, env={"SUMS_ITEMS": "500"})
    wait_for(lambda: status(ckpt)["items"] == 500, what="the requeued batch applied")
    assert status(ckpt)["errors"] == 1, "its stored error is gone; the malformed one stays"
    assert status(ckpt)["total"] == squares_answer(500)
    rc, out, _ = admin(procs, "requeue", "--job", "flaky", *address, "--max", "5")
    assert rc == 0 and "kicked 1 buried jobs" in out  # the malformed body, to fail again

    rc, out, err = admin(
        procs,
        "top",
        "--job",
        "flaky",
        *address,
        "--checkpoint",
        str(ckpt),
        "--iterations",
        "2",
        "--interval",
        "0.2",
    )
    assert rc == 0, err
    assert out.count("flaky.items") == 2 and "jobs deleted/s" in out
    assert "checkpoint: 500/500 items" in out
    for proc in (fixed, reducer):
        proc.send_signal(signal.SIGTERM)
        finish(proc)


def test_spec_or_job_name_but_not_both(procs: Procs, beanstalkd: Beanstalkd) -> None:
    rc, _, err = admin(procs, "stats", FLAKY, "--job", "flaky", "--beanstalkd", beanstalkd.address)
    assert rc == 2 and "exactly one of SPEC or --job NAME" in err
