"""The operator's day on a live beanstalkd: stats, buried (with stored errors), requeue, top."""

from __future__ import annotations

import json
import signal
import socket
from pathlib import Path

import greenstalk

from beanmill import exitcodes
from beanmill.beanstalk.server import Beanstalkd, free_port
from beanmill.checkpoint import Checkpoint
from beanmill.ids import bare_batch_id
from beanmill.wire import Partial, encode_result
from specs.sums import squares_answer
from support import Procs, beanstalkd_counts, finish, spec_ref, status, wait_for

FLAKY = spec_ref("sums:Flaky")


def admin(procs: Procs, *args: str) -> tuple[int, str, str]:
    return finish(procs.beanmill(*args))


def counts(server: Beanstalkd, tube: str) -> tuple[int, int, int, int]:
    """(ready, reserved, delayed, buried) of a tube."""
    c = beanstalkd_counts(server, tube)
    return (
        c.get("current-jobs-ready", 0),
        c.get("current-jobs-reserved", 0),
        c.get("current-jobs-delayed", 0),
        c.get("current-jobs-buried", 0),
    )


def test_operator_finds_requeues_and_finishes_a_buried_batch(
    beanstalkd: Beanstalkd, procs: Procs, tmp_path: Path
) -> None:
    ckpt = tmp_path / "ck.sqlite"
    address = ("--beanstalkd", beanstalkd.address)
    env = {"SUMS_ITEMS": "500", "FLAKY_ITEMS": "123"}
    hand = greenstalk.Client((beanstalkd.host, beanstalkd.port), use="flaky.items", encoding=None)
    hand.put(b"{oops")  # a malformed body, put by hand
    hand.close()
    procs.beanmill(
        "producer", FLAKY, *address, "--batch-size", "50", "--state", str(tmp_path / "c.json"),
        env=env,
    )  # fmt: skip
    consumer = procs.beanmill(
        "consumer", FLAKY, *address, "--max-attempts", "2", "--retry-delay", "0", env=env
    )
    reducer = procs.beanmill(
        "reducer", FLAKY, *address, "--checkpoint", str(ckpt), "--commit-interval", "0.2", env=env
    )
    rc, _, err = finish(reducer, timeout=60)
    assert rc == exitcodes.FAILED_ITEMS, err  # item 123 failed twice
    assert status(ckpt)["errors"] == 1 and status(ckpt)["failed_items"] == 1
    consumer.send_signal(signal.SIGTERM)  # so that requeued jobs stay ready to be counted
    assert finish(consumer)[0] == 0

    rc, out, err = admin(procs, "stats", "--job", "flaky", *address, "--json")
    assert rc == 0, err
    data = json.loads(out)
    items = data["tubes"]["items"]
    assert (items["ready"], items["reserved"], items["delayed"], items["buried"]) == (0, 0, 0, 1)
    assert items["total"] == 12, "10 batches, 1 retry, 1 malformed body"
    assert items["watching"] == 0 and data["tubes"]["results"]["watching"] == 0
    server = data["server"]
    assert server["binlog-current-index"] >= server["binlog-oldest-index"] > 0
    assert server["version"] and server["uptime"] >= 0

    rc, out, err = admin(procs, "buried", FLAKY, *address, "--checkpoint", str(ckpt), "--json")
    assert rc == 0, err
    malformed, failed = json.loads(out)
    assert failed["exception"] == "ValueError: item 123 is cursed" and failed["item"] == 123
    assert failed["batch"] == "s50-2~" and failed["attempts"] == 2 and failed["job_id"] is None
    assert failed["host"] == socket.gethostname() and "Traceback" in failed["traceback"]
    assert malformed["batch"] == "(malformed)" and "not valid JSON" in malformed["exception"]

    views = {  # started together: each is a process of its own
        flags: procs.beanmill(
            "buried", "--job", "flaky", *address, "--checkpoint", str(ckpt), *flags
        )
        for flags in [(), ("-v",)]
    }
    outs = {flags: finish(proc)[1] for flags, proc in views.items()}
    assert outs[()].startswith("flaky.items: 1 buried, 1 described\n")
    assert "1 items failed their last attempt (not counted):" in outs[()]
    assert "item 123  batch s50-2~" in outs[()]
    assert "item 123 is cursed" in outs[()] and "Traceback" not in outs[()]
    assert "    | Traceback (most recent call last):" in outs[("-v",)]

    job_id = str(malformed["job_id"])
    rc, out, err = admin(procs, "requeue", "--job", "flaky", *address, "--job-id", job_id)
    assert (rc, out) == (0, "kicked 1 buried jobs on flaky.items\n"), err
    assert counts(beanstalkd, "flaky.items") == (1, 0, 0, 0)

    rc, out, err = admin(
        procs, "requeue", FLAKY, *address, "--job-id", job_id, "--job-id", "999999"
    )
    assert (rc, out) == (2, "kicked 0 buried jobs on flaky.items\n")
    assert err.splitlines() == [
        f"beanmill: error: job {job_id} is ready, not buried: it waits for a consumer already",
        "beanmill: error: job 999999 does not exist on this beanstalkd (done and deleted, or "
        "a wrong id): see `beanmill buried` for the buried ones",
    ]

    rc, out, err = admin(procs, "requeue", "--job", "flaky", *address, "--checkpoint", str(ckpt))
    assert rc == 0, err
    assert out.startswith("requeued 1 failed items in 1 retry batches")
    assert status(ckpt)["failed_items"] == 0 and not status(ckpt)["complete"]

    fixed = procs.beanmill("consumer", FLAKY, *address, env={"SUMS_ITEMS": "500"})
    reducer = procs.reducer(FLAKY, beanstalkd.address, ckpt, env={"SUMS_ITEMS": "500"})
    rc, _, err = finish(reducer)  # it puts the retry, and exits once every item is counted
    assert rc == 0, err
    snap = status(ckpt)
    assert snap["complete"] and snap["items"] == 500 and snap["failed_items"] == 0
    assert snap["total"] == squares_answer(500)
    assert snap["errors"] == 1, "the malformed body's error stays"
    wait_for(
        lambda: counts(beanstalkd, "flaky.items")[3] == 1, what="the malformed body buried again"
    )
    rc, out, err = admin(procs, "buried", "--job", "flaky", *address, "--checkpoint", str(ckpt))
    assert out.startswith("flaky.items: 1 buried, 1 described\n") and "cursed" not in out, err

    rc, out, err = admin(
        procs, "top", FLAKY, *address, "--checkpoint", str(ckpt),
        "--iterations", "2", "--interval", "0.2",
    )  # fmt: skip
    assert rc == 0, err
    assert out.count("\nflaky.items ") == 2 and out.count("\nflaky.results ") == 2
    assert "\x1b[" not in out, "no screen clearing when stdout is not a terminal"
    assert "put/s" in out and "1 buried (see `beanmill buried`)" in out
    assert "checkpoint: 500/500 items (100.0%) in 12 batches" in out and "complete" in out

    rc, out, err = admin(
        procs, "delete", "--job", "flaky", *address, "--checkpoint", str(ckpt),
        "--job-id", str(malformed["job_id"]),
    )  # fmt: skip
    assert (rc, out) == (0, "deleted 1 buried jobs, forgot 1 stored errors\n"), err
    assert status(ckpt)["errors"] == 0 and counts(beanstalkd, "flaky.items")[3] == 0
    assert status(ckpt)["total"] == squares_answer(500), "deleting touches nothing counted"
    fixed.send_signal(signal.SIGTERM)
    assert finish(fixed)[0] == 0


def test_a_job_buried_by_hand_is_listed_without_a_checkpoint_and_delayed_ones_stay_put(
    beanstalkd: Beanstalkd, procs: Procs
) -> None:
    address = ("--beanstalkd", beanstalkd.address)
    client = greenstalk.Client(
        (beanstalkd.host, beanstalkd.port), use="words.items", watch="words.items", encoding=None
    )
    client.put(b"7", delay=3600)  # a retry waiting out its delay: requeue must not hurry it
    client.put(b"41")
    job = client.reserve(timeout=5)
    client.bury(job)
    client.close()

    rc, out, err = admin(procs, "buried", "--job", "words", *address, "--json")
    assert rc == 0, err
    [listed] = json.loads(out)
    assert listed["job_id"] == job.id and listed["batch"] == bare_batch_id("41")
    assert listed["reason"] == "unknown" and listed["exception"].startswith("no stored error")
    rc, out, _ = admin(procs, "buried", "--job", "words", *address)
    assert "pass --checkpoint to see every stored error" in out

    for expected in (1, 0):
        rc, out, err = admin(procs, "requeue", "--job", "words", *address)
        assert (rc, out) == (0, f"kicked {expected} buried jobs on words.items\n"), err
        assert counts(beanstalkd, "words.items") == (1, 0, 1, 0)


def test_delete_takes_only_buried_jobs_of_this_job_and_usable_ones_only_when_told(
    beanstalkd: Beanstalkd, procs: Procs
) -> None:
    address = ("--beanstalkd", beanstalkd.address)
    client = greenstalk.Client((beanstalkd.host, beanstalkd.port), encoding=None)
    ids = {}
    for tube, body in [("other.items", b"3"), ("words.items", b"{oops"), ("words.items", b"41")]:
        client.use(tube)
        client.watch(tube)
        client.put(body)
        job = client.reserve(timeout=5)
        client.bury(job)
        client.ignore(tube)
        ids[body] = job.id
    ready = client.put(b"7")  # in words.items: work under way
    client.close()

    asked = [ids[b"{oops"], ids[b"41"], ready, ids[b"3"], 999999]
    rc, out, err = admin(
        procs, "delete", "--job", "words", *address, *(f"--job-id={i}" for i in asked)
    )
    assert (rc, out) == (2, "deleted 1 buried jobs\n")
    assert err.splitlines() == [
        f"beanmill: error: job {ids[b'41']} is batch {bare_batch_id('41')}, which the total "
        "would never count: requeue it once its cause is fixed, or pass --lose-items",
        f"beanmill: error: job {ready} is ready, not buried: it waits for a consumer already; "
        "only buried jobs are deleted",
        f"beanmill: error: job {ids[b'3']} is in tube other.items, not words.items: check the "
        "id and --job",
        "beanmill: error: job 999999 does not exist on this beanstalkd (done and deleted, or "
        "a wrong id): see `beanmill buried` for the buried ones",
    ]
    assert counts(beanstalkd, "words.items") == (1, 0, 0, 1)
    assert counts(beanstalkd, "other.items") == (0, 0, 0, 1)

    rc, out, err = admin(
        procs, "delete", "--job", "words", *address, "--job-id", str(ids[b"41"]), "--lose-items"
    )
    assert (rc, out) == (0, "deleted 1 buried jobs\n"), err
    assert counts(beanstalkd, "words.items") == (1, 0, 0, 0)


def test_usage_errors_are_one_line_and_exit_2(
    beanstalkd: Beanstalkd, procs: Procs, tmp_path: Path
) -> None:
    other = tmp_path / "squares.sqlite"
    Checkpoint(other, "squares").close()
    address = ("--beanstalkd", beanstalkd.address)
    cases = {
        ("stats", FLAKY, "--job", "flaky", *address): "give exactly one of SPEC or --job NAME",
        ("top", *address): "give exactly one of SPEC or --job NAME",
        ("stats", "--job", "no spaces", *address): "job name 'no spaces' cannot name a tube",
        ("buried", "--job", "flaky", *address, "--checkpoint", str(tmp_path / "nope.sqlite")): (
            "no checkpoint at"
        ),
        ("buried", "--job", "flaky", *address, "--checkpoint", str(other)): (
            "belongs to job 'squares', not 'flaky'"
        ),
        ("requeue", "--job", "flaky", *address, "--job-id", "1", "--max", "1"): "not both",
        ("stats", "--job", "flaky", "--beanstalkd", f"127.0.0.1:{free_port()}"): (
            "nothing listens at"
        ),
    }
    started = {args: procs.beanmill(*args) for args in cases}
    for args, proc in started.items():
        rc, _, err = finish(proc)
        assert rc == 2 and err.count("\n") == 1, (args, err)
        assert err.startswith("beanmill: error: ") and cases[args] in err, (args, err)


def test_a_result_buried_for_an_unfoldable_value_is_reached_on_the_results_tube(
    beanstalkd: Beanstalkd, procs: Procs, tmp_path: Path
) -> None:
    """`requeue` and `delete` reach the results tube: a result rereduce() could not fold is
    buried there by the reducer, and an operator can delete it (or kick it once fixed)."""
    client = greenstalk.Client(
        (beanstalkd.host, beanstalkd.port), use="words.results", encoding=None
    )
    client.put(encode_result(Partial(("x-1",), 1, "not a number")))
    client.put(encode_result(Partial(("x-2",), 1, 5)))
    client.close()
    ckpt = tmp_path / "ck.sqlite"
    reducer = procs.reducer(spec_ref("sums:Words"), beanstalkd.address, ckpt)
    wait_for(
        lambda: (
            ckpt.exists()
            and status(ckpt)["items"] == 1
            and counts(beanstalkd, "words.results")[3] == 1
        ),
        what="the good result applied, the unfoldable one buried",
    )
    address = ("--job", "words", "--beanstalkd", beanstalkd.address)
    rc, out, err = admin(procs, "requeue", *address, "--tube", "results")
    assert (rc, out) == (0, "kicked 1 buried jobs on words.results\n"), err
    wait_for(lambda: counts(beanstalkd, "words.results")[3] == 1, what="buried again")
    job_id = greenstalk.Client((beanstalkd.host, beanstalkd.port), use="words.results")
    buried_id = job_id.peek_buried().id
    job_id.close()
    rc, out, err = admin(procs, "delete", *address, "--tube", "results", "--job-id", str(buried_id))
    assert rc == 2 and "a partial, which the total would never count" in err
    rc, out, err = admin(
        procs, "delete", *address, "--tube", "results", "--job-id", str(buried_id), "--lose-items"
    )
    assert (rc, out) == (0, "deleted 1 buried jobs\n"), err
    assert counts(beanstalkd, "words.results")[3] == 0 and status(ckpt)["total"] == 5
    reducer.send_signal(signal.SIGTERM)
    assert finish(reducer)[0] == 0
