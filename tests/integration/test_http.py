"""--http on real processes: /metrics agrees with `status --json`, consumers count what they
map, and a non-loopback address is refused before anything starts."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from beanmill import exitcodes
from beanmill.beanstalk.server import Beanstalkd, free_port
from specs.sums import squares_answer
from support import Procs, finish, spec_ref, status, wait_for

SQUARES = spec_ref("sums:Squares")


def scrape(port: int) -> dict[str, float]:
    """name{labels} -> value, labels in sorted order, without the job label."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()) if k != "job")
            out[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return out


def answers(port: int) -> bool:
    try:
        scrape(port)
    except (urllib.error.URLError, ConnectionError):
        return False
    return True


def test_metrics_of_reducer_and_consumers_agree_with_status_json(
    procs: Procs, beanstalkd: Beanstalkd, tmp_path: Path
) -> None:
    ckpt = tmp_path / "squares.sqlite"
    reducer_port, consumer_ports = free_port(), [free_port(), free_port()]
    env = {"SUMS_ITEMS": "2000"}
    procs.beanmill(
        "reducer", SQUARES, "--beanstalkd", beanstalkd.address, "--checkpoint", str(ckpt),
        "--commit-interval", "0.2", "--keep-running",
        env={**env, "BEANMILL_HTTP": f"127.0.0.1:{reducer_port}"},  # the env var, as a unit has it
    )  # fmt: skip
    for port in consumer_ports:
        procs.beanmill(
            "consumer", SQUARES, "--beanstalkd", beanstalkd.address, "--http", f"127.0.0.1:{port}",
            env=env,
        )  # fmt: skip
    for port in (reducer_port, *consumer_ports):
        wait_for(lambda p=port: answers(p), what=f"--http on port {port}")  # type: ignore[misc]
    procs.beanmill(
        "producer", SQUARES, "--beanstalkd", beanstalkd.address,
        "--state", str(tmp_path / "cursor.json"), "--batch-size", "50", env=env,
    )  # fmt: skip
    wait_for(lambda: scrape(reducer_port).get("beanmill_complete") == 1, 60, "complete")

    snap = status(ckpt)
    metrics = scrape(reducer_port)
    assert snap["complete"] and snap["total"] == squares_answer(2000)
    assert metrics["beanmill_items_counted_total"] == snap["items"] == 2000
    assert metrics["beanmill_batches_applied_total"] == snap["batches"] == 40
    assert metrics["beanmill_items_total"] == snap["end_items"] == 2000
    assert metrics["beanmill_items_failed"] == snap["failed_items"] == 0
    assert metrics["beanmill_buried_jobs"] == snap["errors"] == 0
    assert metrics["beanmill_tube_jobs{state=ready,tube=squares.items}"] == 0
    assert metrics["beanmill_consumers"] == 2
    assert metrics["beanmill_beanstalkd_disk_full"] == 0
    assert metrics["beanmill_seconds_since_commit"] < 60
    with urllib.request.urlopen(f"http://127.0.0.1:{reducer_port}/api/status", timeout=10) as r:
        doc = json.load(r)
    # status was not told where beanstalkd is (null); the reducer's server asks it ([]).
    assert {k: doc[k] for k in snap if k not in ("updated_at", "binlog_full")} == {
        k: v for k, v in snap.items() if k not in ("updated_at", "binlog_full")
    }
    assert snap["binlog_full"] is None and doc["binlog_full"] == []
    assert doc["state"] == "finished" and doc["consumers_watching"] == 2

    per_consumer = [scrape(port) for port in consumer_ports]
    assert sum(m["beanmill_maps_total"] for m in per_consumer) == 2000
    assert all(m["beanmill_retries_total"] == 0 for m in per_consumer)
    assert sum(m["beanmill_batch_map_seconds_count"] for m in per_consumer) >= 40 / 64
    assert all(m["beanmill_consumer_paused{reason=storm}"] == 0 for m in per_consumer)


def test_run_refuses_a_public_http_address_without_http_public(
    procs: Procs, tmp_path: Path
) -> None:
    args = ("run", SQUARES, "--data-dir", str(tmp_path / "d"), "--http", "0.0.0.0:8000")
    rc, _, err = finish(procs.beanmill(*args))
    assert rc == exitcodes.USAGE
    assert err.strip().splitlines() == [
        "beanmill: error: --http 0.0.0.0:8000 is not a loopback address, and the dashboard and "
        "/metrics have no authentication: pass --http-public to serve them there anyway"
    ]
    assert not (tmp_path / "d").exists()


def test_dashboard_command_serves_a_finished_job(procs: Procs, tmp_path: Path) -> None:
    data = tmp_path / "d"
    rc, _, err = finish(procs.beanmill("run", SQUARES, "--data-dir", str(data)), 120)
    assert rc == 0, err
    port = free_port()
    procs.beanmill("dashboard", "--data-dir", str(data), "--http", f"127.0.0.1:{port}")
    wait_for(lambda: answers(port), what="beanmill dashboard")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status", timeout=10) as r:
        doc = json.load(r)
    assert doc["state"] == "finished" and doc["items"] == 2000
    assert scrape(port)["beanmill_items_counted_total"] == 2000
