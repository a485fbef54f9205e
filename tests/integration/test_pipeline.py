"""The three roles against a real beanstalkd, started as separate processes as on real hosts."""

from __future__ import annotations

import json
import signal
import socket
from pathlib import Path

import greenstalk

from beanmill.beanstalk.server import Beanstalkd
from specs.sums import squares_answer
from support import Procs, beanstalkd_counts, finish, spec_ref, start_roles, status, wait_for

SQUARES = spec_ref("sums:Squares")


def test_roles_started_separately_reach_the_exact_total(
    beanstalkd: Beanstalkd, procs: Procs, tmp_path: Path
) -> None:
    ckpt = tmp_path / "ck.sqlite"
    start_roles(procs, beanstalkd.address, ckpt, SQUARES, env={"SUMS_ITEMS": "5000"})
    reducer, producer = procs.started[0], procs.started[1]
    rc, out, err = finish(reducer)
    assert rc == 0, err
    assert finish(producer)[0] == 0
    snap = status(ckpt)
    assert snap["total"] == squares_answer(5000)
    assert (snap["items"], snap["batches"], snap["complete"]) == (5000, 100, True)
    assert "[squares] complete |" in out
    assert beanstalkd_counts(beanstalkd, "squares.items")["current-jobs-ready"] == 0


def test_status_reads_while_the_reducer_commits(
    beanstalkd: Beanstalkd, procs: Procs, tmp_path: Path
) -> None:
    ckpt = tmp_path / "ck.sqlite"
    start_roles(
        procs,
        beanstalkd.address,
        ckpt,
        SQUARES,
        consumers=1,
        env={"SUMS_ITEMS": "3000", "SUMS_MAP_DELAY": "0.001"},
    )
    wait_for(ckpt.exists, what="checkpoint created")
    seen = []
    while procs.started[0].poll() is None:
        seen.append(status(ckpt)["items"])
    assert seen == sorted(seen), "items applied never go backwards"
    assert any(0 < n < 3000 for n in seen), f"status saw the run in progress: {seen}"
    assert status(ckpt)["total"] == squares_answer(3000)


def test_bare_ids_from_a_raw_socket_producer_are_summed_once_each(
    beanstalkd: Beanstalkd, procs: Procs, tmp_path: Path
) -> None:
    """Any beanstalkd client in any language can feed the items tube: here, no client at all."""
    with socket.create_connection((beanstalkd.host, beanstalkd.port)) as sock:
        reader = sock.makefile("rb")
        sock.sendall(b"use words.items\r\n")
        assert reader.readline() == b"USING words.items\r\n"
        for body in [b"5", b"7", b" 11\n", b"5", b"13"]:  # "5" twice: one item, deduplicated
            sock.sendall(b"put 0 0 60 %d\r\n%b\r\n" % (len(body), body))
            assert reader.readline().startswith(b"INSERTED")
    ckpt = tmp_path / "ck.sqlite"
    words = spec_ref("sums:Words")
    reducer = procs.reducer(words, beanstalkd.address, ckpt)
    procs.beanmill("consumer", words, "--beanstalkd", beanstalkd.address)
    wait_for(lambda: ckpt.exists() and status(ckpt)["items"] == 4, what="4 distinct items")
    assert status(ckpt)["total"] == 5 + 7 + 11 + 13
    reducer.send_signal(signal.SIGTERM)
    assert finish(reducer)[0] == 0


def test_a_caught_up_reducer_commits_long_before_its_interval(
    beanstalkd: Beanstalkd, procs: Procs, tmp_path: Path
) -> None:
    """Bare IDs have no end record: without the caught-up commit these 3 items would wait the
    whole --commit-interval (60 s) to show in status; caught up, it takes 5% of that."""
    put_raw(beanstalkd, "words.items", [b"2", b"3", b"4"])
    ckpt = tmp_path / "ck.sqlite"
    words = spec_ref("sums:Words")
    address = ("--beanstalkd", beanstalkd.address)
    procs.beanmill("reducer", words, *address, "--checkpoint", str(ckpt), "--commit-interval", "60")
    procs.beanmill("consumer", words, *address)
    wait_for(lambda: ckpt.exists() and status(ckpt)["items"] == 3, timeout=20, what="3 items")
    assert status(ckpt)["total"] == 9


def put_raw(server: Beanstalkd, tube: str, bodies: list[bytes]) -> None:
    client = greenstalk.Client((server.host, server.port), encoding=None, use=tube)
    for body in bodies:
        client.put(body)
    client.close()


def test_malformed_bodies_are_buried_with_a_reason_and_the_consumer_stays_up(
    beanstalkd: Beanstalkd, procs: Procs, tmp_path: Path
) -> None:
    bad = [
        b"\xff\xfe not utf-8",
        b"{broken json",
        b'{"v": 99, "type": "batch"}',
        b'{"v": 1, "type": "batch", "batch": "x", "items": []}',
        b"   ",
        b'{"v": 1, "type": "batch", "batch": "y", "items": [1.5]}',
    ]
    put_raw(beanstalkd, "words.items", [*bad, b"20", b"22"])
    ckpt = tmp_path / "ck.sqlite"
    words = spec_ref("sums:Words")
    consumer = procs.beanmill("consumer", words, "--beanstalkd", beanstalkd.address)
    reducer = procs.reducer(words, beanstalkd.address, ckpt)
    wait_for(
        lambda: beanstalkd_counts(beanstalkd, "words.items").get("current-jobs-buried") == len(bad),
        what="every bad body buried",
    )
    wait_for(
        lambda: ckpt.exists() and status(ckpt)["errors"] == len(bad),
        what="one stored error per bad body",
    )
    assert status(ckpt)["total"] == 42
    assert consumer.poll() is None, "the consumer is still up"
    reducer.send_signal(signal.SIGTERM)
    assert finish(reducer)[0] == 0
    consumer.send_signal(signal.SIGTERM)
    rc, _, err = finish(consumer)
    assert rc == 0, err
    events = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    reasons = [e["reason"] for e in events if e["event"] == "job_malformed_buried"]
    assert len(reasons) == len(bad)
    assert any("not UTF-8" in r for r in reasons) and any("version" in r for r in reasons)
