"""Sampling to convergence: random order, an estimate that stops the run, and its plot."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

from beanmill.beanstalk.server import Beanstalkd
from support import Procs, beanstalkd_counts, finish, status, wait_for_log

EXAMPLE = Path(__file__).parents[2] / "examples" / "sampled_mean.py"
SPEC = f"{EXAMPLE}:RecordSize"
sys.path.insert(0, str(EXAMPLE.parent))
import sampled_mean  # noqa: E402

CYCLES = "2442"  # 4096 * 2442 = 10,002,432 records: about 10^7


def test_a_random_order_run_over_ten_million_items_stops_with_the_truth_inside(
    procs: Procs, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    progress = tmp_path / "progress.jsonl"
    args = [
        "run",
        SPEC,
        "--data-dir",
        str(data),
        "--order",
        "random",
        "--seed",
        "3",
        "--until-rel-ci",
        "0.01",
        "--batch-size",
        "100",
        "--progress-file",
        str(progress),
    ]
    env = {"SAMPLED_CYCLES": CYCLES}
    rc, out, err = finish(procs.beanmill(*args, env=env), timeout=120)
    assert rc == 0, err
    snap = status(data / "checkpoint.sqlite")
    assert snap["complete"] and "relative half-width" in snap["stopped_because"]
    est = snap["estimate"]
    assert est["population"] == 4096 * int(CYCLES)
    assert 1000 < est["n"] == snap["items"] < 1_000_000, "stopped long before the end"
    low, high = est["ci95"]
    assert low <= sampled_mean.truth() <= high
    assert (high - low) / 2 / est["mean"] <= 0.01
    history = [json.loads(line) for line in progress.read_text().splitlines()]
    assert (
        history[-1]["state"].startswith("stopped early") and history[-1]["items"] == snap["items"]
    )
    assert "±" in history[-1]["report"]
    rc, out, _ = finish(procs.beanmill(*args, env=env))
    assert rc == 0 and "already finished" in out


def test_an_early_stop_drains_the_items_and_tells_idle_consumers(
    beanstalkd: Beanstalkd, procs: Procs, tmp_path: Path
) -> None:
    ckpt = tmp_path / "ck.sqlite"
    env = {"SAMPLED_CYCLES": CYCLES}
    address = ["--beanstalkd", beanstalkd.address]
    producer = procs.beanmill(
        "producer",
        SPEC,
        *address,
        "--order",
        "random",
        "--seed",
        "5",
        "--high-water",
        "50",
        "--state",
        str(tmp_path / "c.json"),
        env=env,
    )
    consumer = procs.beanmill("consumer", SPEC, *address, env=env)
    reducer = procs.beanmill(
        "reducer",
        SPEC,
        *address,
        "--checkpoint",
        str(ckpt),
        "--max-items",
        "5000",
        "--commit-interval",
        "0.2",
        env=env,
    )
    assert finish(reducer)[0] == 0
    assert "max items reached" in status(ckpt)["stopped_because"]
    assert finish(producer, timeout=30)[0] == 0, "the producer stops putting by itself"
    counts = beanstalkd_counts(beanstalkd, "recordsize.items")
    assert counts["current-jobs-ready"] == counts["current-jobs-delayed"] == 0
    assert beanstalkd_counts(beanstalkd, "recordsize.control")["current-jobs-ready"] == 1
    assert consumer.poll() is None, "an idle consumer waits for work"
    wait_for_log(consumer, "job_finished", timeout=15)  # it looks every 5 s while idle
    consumer.send_signal(signal.SIGTERM)
    assert finish(consumer)[0] == 0


FIELDS_EXAMPLE = Path(__file__).parents[2] / "examples" / "sampled_fields.py"
import sampled_fields  # noqa: E402


def test_a_fields_run_over_a_million_items_stops_with_every_truth_inside(
    procs: Procs, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    spec = f"{FIELDS_EXAMPLE}:FileSizes"
    args = ["run", spec, "--data-dir", str(data), "--order", "random", "--seed", "1"]
    rc, out, err = finish(procs.beanmill(*args, "--until-rel-ci", "0.01"), timeout=180)
    assert rc == 0, err
    snap = status(data / "checkpoint.sqlite")
    assert "(mean, total, p90, big)" in snap["stopped_because"]
    assert snap["items"] < 1_000_000, "stopped long before the end"
    truth = sampled_fields.truth()
    for name in ("mean", "total", "p90", "big"):
        est = snap["estimate"][name]
        low, high = est["ci95"]
        assert low <= truth[name] <= high, name
        assert (high - low) / 2 / abs(est["value"]) <= 0.01
    assert "p90: p90 " in out and "; big: proportion " in out
