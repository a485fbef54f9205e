"""A job has an identity: an edited items(), a stale or forged control record, foreign
batches or a forged end never give a wrong total reported as complete."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import greenstalk

from beanmill import exitcodes
from beanmill.beanstalk.server import Beanstalkd
from specs.sums import squares_answer
from support import Procs, finish, spec_ref, status, wait_for

SQUARES = spec_ref("sums:Squares")


def run(procs: Procs, data: Path, n: int, *extra: str, delay: str = "0") -> tuple[int, str, str]:
    argv = ["run", SQUARES, "--data-dir", str(data), "--batch-size", "50", *extra]
    return finish(
        procs.beanmill(*argv, env={"SUMS_ITEMS": str(n), "SUMS_MAP_DELAY": delay}), timeout=120
    )


def test_an_edited_items_is_refused_at_resume_finished_or_not(procs: Procs, tmp_path: Path) -> None:
    done = tmp_path / "done"
    assert run(procs, done, 1000)[0] == exitcodes.OK
    rc, out, err = run(procs, done, 2000)
    assert rc == exitcodes.USAGE, out
    assert err.strip().splitlines() == [
        line for line in err.strip().splitlines() if line.startswith("beanmill: error: ")
    ]
    assert "1,000 items when this job started and 2,000 items now" in err
    assert "beanmill reset" in err and "complete" not in out

    half = tmp_path / "half"
    env = {"SUMS_ITEMS": "4000", "SUMS_MAP_DELAY": "0.002"}
    first = procs.beanmill("run", SQUARES, "--data-dir", str(half), "--batch-size", "50", env=env)
    ckpt = half / "checkpoint.sqlite"
    wait_for(lambda: ckpt.exists() and status(ckpt)["items"] >= 200, what="some progress")
    first.send_signal(signal.SIGINT)
    assert finish(first)[0] == exitcodes.STOPPED
    rc, _, err = run(procs, half, 3000)
    assert rc == exitcodes.USAGE and "4,000 items when this job started" in err
    rc, out, err = run(procs, half, 4000)
    assert rc == exitcodes.OK, err
    assert f"result: {squares_answer(4000)}" in out


def test_a_stale_finished_record_and_junk_on_the_control_tube_cannot_finish_a_fresh_run(
    beanstalkd: Beanstalkd, procs: Procs, tmp_path: Path
) -> None:
    """An earlier run of the same job name on a shared beanstalkd left its finished record;
    someone put 7 bytes there too. A fresh run still counts every item, and buries both."""
    address = ("--beanstalkd", beanstalkd.address)
    assert run(procs, tmp_path / "earlier", 500, *address)[0] == exitcodes.OK
    client = greenstalk.Client((beanstalkd.host, beanstalkd.port), use="squares.control")
    client.put("1234567")
    client.close()
    rc, out, err = run(procs, tmp_path / "fresh", 3000, *address, "--log-level", "info")
    assert rc == exitcodes.OK, err
    assert f"result: {squares_answer(3000)}" in out
    assert status(tmp_path / "fresh" / "checkpoint.sqlite")["items"] == 3000
    buried = [json.loads(x) for x in err.splitlines() if '"control_record_buried"' in x]
    # Each run signs with its own data dir's secret, so the earlier run's record fails the
    # tag before its identity is even read; unsigned, it would be buried as stale.
    assert len({b["job_id"] for b in buried}) == 2
    assert all("bad signature" in b["reason"] for b in buried)


def test_a_finished_record_of_an_earlier_run_is_stale_even_with_a_shared_secret(
    beanstalkd: Beanstalkd, procs: Procs, tmp_path: Path
) -> None:
    secret = tmp_path / "secret"
    secret.write_text("0123456789abcdef" * 4)
    secret.chmod(0o600)
    common = ("--beanstalkd", beanstalkd.address, "--secret-file", str(secret))
    assert run(procs, tmp_path / "earlier", 500, *common)[0] == exitcodes.OK
    rc, out, err = run(procs, tmp_path / "fresh", 2000, *common, "--log-level", "info")
    assert rc == exitcodes.OK, err
    assert f"result: {squares_answer(2000)}" in out
    buried = [json.loads(x) for x in err.splitlines() if '"control_record_buried"' in x]
    assert buried and all("stale" in b["reason"] for b in buried)


def test_foreign_batches_and_a_forged_end_never_complete_a_job(
    beanstalkd: Beanstalkd, procs: Procs, tmp_path: Path
) -> None:
    client = greenstalk.Client((beanstalkd.host, beanstalkd.port), use="squares.items")
    for i in range(3):  # what wire-format.md allows a foreign producer: counted, apart
        body = json.dumps({"v": 1, "type": "batch", "batch": f"x-000{i}", "items": [i]})
        client.put(body, priority=0)
    client.use("squares.results")
    client.put(json.dumps({"v": 1, "type": "end", "batches": 0, "items": 0}))
    client.close()
    rc, _, err = run(procs, tmp_path / "d", 2000, "--beanstalkd", beanstalkd.address)
    assert rc == exitcodes.OK, err
    snap = status(tmp_path / "d" / "checkpoint.sqlite")
    # Complete only once all 40 batches of the layout are in; the foreign ones, taken first
    # (priority 0) or not, are counted apart and never stand in for them.
    assert snap["complete"] and snap["items"] == 2000 + snap["foreign_batches"]
    assert snap["end_batches"] == 40, "the forged end record was not taken"
    extra = snap["total"] - squares_answer(2000)
    assert extra in {0, 1, 4, 5} and bool(extra) <= bool(snap["foreign_batches"])


def test_a_second_producer_for_the_same_job_is_refused(
    beanstalkd: Beanstalkd, procs: Procs, tmp_path: Path
) -> None:
    address = ("--beanstalkd", beanstalkd.address)
    env = {"SUMS_ITEMS": "100000"}
    first = procs.beanmill(
        "producer", SQUARES, *address, "--state", str(tmp_path / "a.json"), "--high-water", "2",
        env=env,
    )  # fmt: skip
    wait_for((tmp_path / "a.json").exists, what="the first producer at work")
    rc, _, err = finish(
        procs.beanmill("producer", SQUARES, *address, "--state", str(tmp_path / "b.json"), env=env)
    )
    assert rc == exitcodes.USAGE
    assert "another producer" in err and len(err.strip().splitlines()) == 1
    assert first.poll() is None
    first.send_signal(signal.SIGTERM)
    assert finish(first)[0] == 0


def test_reset_clears_a_job_so_its_name_can_be_used_again(procs: Procs, tmp_path: Path) -> None:
    data = tmp_path / "d"
    assert run(procs, data, 500)[0] == exitcodes.OK
    rc, out, err = finish(procs.beanmill("reset", "--data-dir", str(data), "--yes"))
    assert rc == 0, err
    assert out.startswith("reset squares: deleted ") and "checkpoint.sqlite" in out
    assert not (data / "checkpoint.sqlite").exists() and not (data / "cursor.json").exists()
    rc, out, err = run(procs, data, 800)
    assert rc == exitcodes.OK, err
    assert "already finished" not in out and f"result: {squares_answer(800)}" in out
