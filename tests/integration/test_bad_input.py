"""Bad input gets one clear line that says what to do, and nothing already done is lost."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import greenstalk

from beanmill import exitcodes
from beanmill.beanstalk.server import Beanstalkd, free_port
from beanmill.checkpoint import read_failed
from beanmill.wire import Partial, Partials, encode_result
from specs.sums import squares_answer
from support import Procs, beanstalkd_counts, finish, spec_ref, start_roles, status, wait_for

SQUARES = spec_ref("sums:Squares")


def one_error_line(err: str) -> str:
    """The one `beanmill: error:` line, beside the JSON log lines of what went before."""
    lines = [x for x in err.strip().splitlines() if x and not x.startswith("{")]
    assert len(lines) == 1, err
    assert lines[0].startswith("beanmill: error: ")
    return lines[0]


def finished_checkpoint(beanstalkd: Beanstalkd, procs: Procs, tmp_path: Path) -> Path:
    ckpt = tmp_path / "ck.sqlite"
    start_roles(procs, beanstalkd.address, ckpt, SQUARES, consumers=1, env={"SUMS_ITEMS": "300"})
    assert finish(procs.started[0])[0] == 0
    return ckpt


def test_a_corrupt_checkpoint_is_refused_and_left_untouched(
    beanstalkd: Beanstalkd, procs: Procs, tmp_path: Path
) -> None:
    ckpt = finished_checkpoint(beanstalkd, procs, tmp_path)
    for damage in (b"this is not a database" * 100, ckpt.read_bytes()[:3000]):
        bad = tmp_path / "bad.sqlite"
        bad.write_bytes(damage)
        rc, _, err = finish(
            procs.beanmill(
                "reducer", SQUARES, "--beanstalkd", beanstalkd.address, "--checkpoint", str(bad)
            )
        )
        assert rc == 2
        assert "was left untouched" in one_error_line(err)
        assert bad.read_bytes() == damage
        rc, _, err = finish(procs.beanmill("status", "--checkpoint", str(bad)))
        assert rc == 2 and "unreadable" in one_error_line(err)


def test_a_checkpoint_of_another_job_is_refused(
    beanstalkd: Beanstalkd, procs: Procs, tmp_path: Path
) -> None:
    ckpt = finished_checkpoint(beanstalkd, procs, tmp_path)
    before = ckpt.read_bytes()
    rc, _, err = finish(
        procs.beanmill(
            "reducer",
            spec_ref("sums:Flaky"),
            "--beanstalkd",
            beanstalkd.address,
            "--checkpoint",
            str(ckpt),
        )
    )
    assert rc == 2
    assert "belongs to job 'squares', not 'flaky'" in one_error_line(err)
    assert status(ckpt)["total"] == squares_answer(300)
    assert ckpt.read_bytes() == before


def test_a_damaged_producer_cursor_is_refused_and_left_untouched(
    beanstalkd: Beanstalkd, procs: Procs, tmp_path: Path
) -> None:
    cursor = tmp_path / "cursor.json"
    for damage in (b'{"v": 1, "job": "squ', b"\x00\x01garbage", b'{"v": 7}'):
        cursor.write_bytes(damage)
        rc, _, err = finish(
            procs.beanmill(
                "producer", SQUARES, "--beanstalkd", beanstalkd.address, "--state", str(cursor)
            )
        )
        assert rc == 2
        assert "is damaged" in one_error_line(err)
        assert cursor.read_bytes() == damage
    assert beanstalkd_counts(beanstalkd, "squares.items").get("total-jobs", 0) == 0


def test_a_producer_restarted_with_another_batch_size_is_refused(
    beanstalkd: Beanstalkd, procs: Procs, tmp_path: Path
) -> None:
    cursor = tmp_path / "cursor.json"
    args = ["producer", SQUARES, "--beanstalkd", beanstalkd.address, "--state", str(cursor)]
    assert finish(procs.beanmill(*args, "--batch-size", "50"))[0] == 0
    rc, _, err = finish(procs.beanmill(*args, "--batch-size", "60"))
    assert rc == 2 and "batch_size=50" in one_error_line(err)


def test_run_without_beanstalkd_installed_says_how_to_install_it(
    procs: Procs, tmp_path: Path
) -> None:
    bare_path = tmp_path / "bin"
    bare_path.mkdir()
    os.symlink(sys.executable, bare_path / "python3")
    proc = procs.beanmill(
        "run", SQUARES, "--data-dir", str(tmp_path / "d"), env={"PATH": str(bare_path)}
    )
    rc, _, err = finish(proc)
    assert rc == 2
    assert "apt-get install beanstalkd" in one_error_line(err)


def test_a_batch_over_the_max_job_size_is_split_and_still_counted_once(
    procs: Procs, tmp_path: Path
) -> None:
    server = Beanstalkd(tmp_path / "binlog", free_port(), extra_args=("-z", "2000")).start()
    try:
        ckpt = tmp_path / "ck.sqlite"
        start_roles(
            procs,
            server.address,
            ckpt,
            SQUARES,
            consumers=1,
            env={"SUMS_ITEMS": "3000"},
            # random order: runs of integers would travel as a small "range" body
            producer_args=("--batch-size", "1000", "--order", "random", "--seed", "5"),
        )
        rc, _, err = finish(procs.started[0])
        assert rc == 0, err
        snap = status(ckpt)
        assert snap["complete"] and snap["total"] == squares_answer(3000)
        assert snap["batches"] == snap["end_batches"] > 3, "pieces, each counted once"
        _, _, perr = finish(procs.started[1])
        assert '"batch_split"' in perr
    finally:
        server.kill()


def test_an_item_too_big_for_any_job_stops_the_producer_with_advice(
    procs: Procs, tmp_path: Path
) -> None:
    server = Beanstalkd(tmp_path / "binlog", free_port(), extra_args=("-z", "2000")).start()
    try:
        rc, _, err = finish(
            procs.beanmill(
                "producer",
                spec_ref("sums:Giant"),
                "--beanstalkd",
                server.address,
                "--state",
                str(tmp_path / "c.json"),
            )
        )
        assert rc == 2
        assert "larger -z" in one_error_line(err)
    finally:
        server.kill()


def test_a_partial_over_the_max_job_size_fails_its_items_with_a_reason(
    procs: Procs, tmp_path: Path
) -> None:
    server = Beanstalkd(tmp_path / "binlog", free_port(), extra_args=("-z", "3000")).start()
    try:
        ckpt = tmp_path / "ck.sqlite"
        start_roles(
            procs,
            server.address,
            ckpt,
            spec_ref("sums:Hoard"),
            consumers=1,
            env={"SUMS_ITEMS": "1000"},
            producer_args=("--batch-size", "500"),
        )
        # a batch holds 500 items of up to 4 bytes (fits), its partial 500 squares (does not)
        assert finish(procs.started[0], timeout=60)[0] == exitcodes.FAILED_ITEMS
        snap = status(ckpt)
        assert snap["failed_items"] == 1000 and snap["items"] == 0 and snap["complete"]
        failed = read_failed(ckpt)
        assert "over beanstalkd's max job size" in failed[0].error
        assert procs.started[2].poll() is None, "the consumer stays up"
    finally:
        server.kill()


def test_a_result_whose_entries_overlap_is_buried_whole_and_a_repeat_entry_counts_once(
    beanstalkd: Beanstalkd, procs: Procs, tmp_path: Path
) -> None:
    """A result job is applied whole or not at all, even when only its second entry is bad."""
    overlapping = Partials((Partial(("a",), 1, 10), Partial(("a", "b"), 2, 20)))
    repeated = Partials((Partial(("c",), 1, 100), Partial(("c",), 1, 100)))
    client = greenstalk.Client(
        (beanstalkd.host, beanstalkd.port), encoding=None, use="words.results"
    )
    for record in (overlapping, repeated, Partial(("d",), 1, 1000)):
        client.put(encode_result(record))
    client.close()
    ckpt = tmp_path / "ck.sqlite"
    reducer = procs.reducer(spec_ref("sums:Words"), beanstalkd.address, ckpt)
    wait_for(lambda: ckpt.exists() and status(ckpt)["items"] == 2, what="c and d applied")
    assert status(ckpt)["total"] == 1100, "nothing of the overlapping result, c once"
    assert beanstalkd_counts(beanstalkd, "words.results")["current-jobs-buried"] == 1
    reducer.send_signal(signal.SIGTERM)
    rc, _, err = finish(reducer)
    assert rc == 0
    assert "partial overlaps the ledger" in err


def test_a_failing_item_of_exactly_the_max_job_size_is_buried_not_a_poison_pill(
    procs: Procs, tmp_path: Path
) -> None:
    """Its failure record (or a retry) cannot fit in a job: it is buried with its reason,
    and every consumer that meets it stays up."""
    server = Beanstalkd(tmp_path / "binlog", free_port(), extra_args=("-z", "2000")).start()
    try:
        client = greenstalk.Client((server.host, server.port), use="words.items")
        client.put("x" * 2000)  # a bare ID that int() refuses, of exactly the max size
        for n in (5, 6, 7):
            client.put(str(n))
        client.close()
        ckpt = tmp_path / "ck.sqlite"
        address = ("--beanstalkd", server.address)
        consumers = [
            procs.beanmill("consumer", spec_ref("sums:Words"), *address, "--max-attempts", "1")
            for _ in range(2)
        ]
        procs.reducer(spec_ref("sums:Words"), server.address, ckpt)
        wait_for(
            lambda: (
                ckpt.exists()
                and status(ckpt)["items"] == 3
                and beanstalkd_counts(server, "words.items").get("current-jobs-buried") == 1
            ),
            what="the three good items counted, the giant buried",
        )
        assert status(ckpt)["total"] == 18
        assert all(c.poll() is None for c in consumers), "no consumer died on it"
    finally:
        server.kill()
