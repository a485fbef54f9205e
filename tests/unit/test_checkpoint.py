"""The reducer's checkpoint: total and ledger commit together or not at all, errors are kept
until their batch is applied, and a damaged or foreign file is refused without being touched."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

from beanmill import checkpoint
from beanmill.checkpoint import Checkpoint, read_errors, read_history, read_snapshot
from beanmill.errors import CheckpointError
from beanmill.ids import bare_batch_id
from beanmill.integrity import seq_path
from beanmill.wire import EndRecord, ErrorRecord
from support import mode, umask

JOB = "squares"


@contextmanager
def opened(path: Path, job: str = JOB) -> Iterator[Checkpoint]:
    ckpt = Checkpoint(path, job)
    try:
        yield ckpt
    finally:
        ckpt.close()


def error(batch: str, exception: str = "ValueError: boom") -> ErrorRecord:
    return ErrorRecord(batch, 17, 3, "failed", exception, "Traceback ...", "host-a")


def real_checkpoint(path: Path, batches: int = 2000) -> Path:
    """A closed checkpoint of several pages, its WAL folded into the main file."""
    with opened(path) as ckpt:
        for k in range(batches // 100):
            ids = [(f"s100-{k * 100 + j}", 100) for j in range(100)]
            ckpt.commit(total=k, items=(k + 1) * 10_000, applied=ids, errors=[error(f"x-{k}")])
    return path


def assert_refused_untouched(path: Path, *, writer: bool = True) -> CheckpointError:
    before = path.read_bytes()
    with pytest.raises(CheckpointError) as info:
        if writer:
            Checkpoint(path, JOB)
        else:
            read_snapshot(path)
    assert path.read_bytes() == before
    return info.value


# -- creating, committing, reading ---------------------------------------------------------


def test_new_checkpoint_and_its_directory_are_private_whatever_the_umask(tmp_path: Path) -> None:
    path = tmp_path / "data" / "ckpt.sqlite"
    with umask(0), opened(path) as ckpt:
        ckpt.commit(total=1, items=1, applied=[("s1-0", 1)])
        assert mode(path) == 0o600
        assert mode(path.parent) == 0o700
        wal = path.with_name(path.name + "-wal")
        if wal.exists():
            assert mode(wal) == 0o600


def test_new_checkpoint_is_empty(tmp_path: Path) -> None:
    with opened(tmp_path / "c.sqlite") as ckpt:
        snap = ckpt.snapshot()
    assert (snap.job, snap.total, snap.items, snap.batches, snap.errors) == (JOB, None, 0, 0, 0)
    assert snap.end_batches is None and not snap.complete


def test_commit_shows_in_snapshot_and_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    with opened(path) as ckpt:
        ckpt.commit(total={"sum": 6}, items=3, applied=[("s2-0", 2), ("s2-1", 1)], layout="s2")
        ckpt.commit(total={"sum": 10}, items=4, applied=[("s2-2", 1)])
        live = ckpt.snapshot()
    with opened(path) as ckpt:
        again = ckpt.snapshot()
    for snap in (live, again, read_snapshot(path)):
        assert (snap.total, snap.items, snap.batches, snap.layout) == ({"sum": 10}, 4, 3, "s2")


def test_applied_finds_exactly_the_committed_batch_ids(tmp_path: Path) -> None:
    committed = [f"s10-{i}" for i in range(0, 2400, 2)]  # more than one 500-ID query chunk
    with opened(tmp_path / "c.sqlite") as ckpt:
        ckpt.commit(total=0, items=len(committed), applied=[(b, 1) for b in committed])
        asked = [f"s10-{i}" for i in range(2400)] + ["s10-x", "", bare_batch_id("7")]
        assert ckpt.applied(asked) == set(committed)
        assert ckpt.applied([]) == set()
        assert ckpt.applied(iter(["s10-0", "s10-1"])) == {"s10-0"}


@pytest.mark.parametrize(
    "applied",
    [[("s1-5", 1), ("s1-1", 1)], [("s1-6", 1), ("s1-6", 1)]],
    ids=["already in the ledger", "twice in one commit"],
)
def test_commit_is_all_or_nothing(tmp_path: Path, applied: list[tuple[str, int]]) -> None:
    path = tmp_path / "c.sqlite"
    with opened(path) as ckpt:
        ckpt.commit(total=10, items=2, applied=[("s1-0", 1), ("s1-1", 1)])
        before = ckpt.snapshot()
        with pytest.raises((sqlite3.DatabaseError, CheckpointError)):
            ckpt.commit(
                total=999,
                items=4,
                applied=applied,
                errors=[error("s1-9")],
                end=EndRecord(9, 9),
                stopped_because="never",
            )
        after = ckpt.snapshot()
        assert ckpt.applied(["s1-0", "s1-1", "s1-5", "s1-6"]) == {"s1-0", "s1-1"}
        assert (after.total, after.items, after.batches) == (10, 2, 2)
        assert (after.errors, after.end_batches, after.stopped_because) == (0, None, None)
        assert after.updated_at == before.updated_at
        # The handle is usable afterwards: no transaction was left open.
        ckpt.commit(total=11, items=3, applied=[("s1-2", 1)])
        assert ckpt.snapshot().total == 11
    assert read_errors(path) == {}


def test_error_is_stored_until_its_batch_is_applied(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    with opened(path) as ckpt:
        ckpt.commit(total=0, items=0, applied=[], errors=[error("s1-3"), error("s1-4")])
        assert ckpt.snapshot().errors == 2
        stored = read_errors(path)
        assert set(stored) == {"s1-3", "s1-4"}
        assert stored["s1-3"]["exception"] == "ValueError: boom"
        assert stored["s1-3"]["host"] == "host-a" and stored["s1-3"]["job_id"] == 17

        ckpt.commit(total=0, items=0, applied=[], errors=[error("s1-3", "KeyError: later")])
        assert read_errors(path)["s1-3"]["exception"] == "KeyError: later"  # newest wins

        ckpt.commit(total=9, items=1, applied=[("s1-3", 1)])  # requeued and done
        assert set(read_errors(path)) == {"s1-4"}
        assert ckpt.snapshot().errors == 1


def test_error_and_its_batch_in_one_commit_leave_no_error(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    with opened(path) as ckpt:
        ckpt.commit(total=1, items=1, applied=[("s1-0", 1)], errors=[error("s1-0")])
        assert ckpt.snapshot().errors == 0
    assert read_errors(path) == {}


def test_complete_once_producer_batches_reach_the_end_record(tmp_path: Path) -> None:
    bare = [(bare_batch_id(str(i)), 1) for i in range(5)]
    foreign = [("x-0001", 1), ("x-0002", 1), ("x-0003", 1)]
    with opened(tmp_path / "c.sqlite") as ckpt:
        first = [("s1-0", 1), ("s1-1", 1), *bare, *foreign]
        ckpt.commit(total=0, items=10, applied=first, layout="s1")
        assert not ckpt.snapshot().complete  # no end record yet
        ckpt.commit(total=0, items=10, applied=[], end=EndRecord(batches=3, items=3))
        snap = ckpt.snapshot()
        assert (snap.batches, snap.bare_batches, snap.producer_batches) == (10, 5, 2)
        assert (snap.end_batches, snap.end_items, snap.foreign_batches) == (3, 3, 3)
        # neither bare items nor foreign batches stand in for the producer's batches
        assert not snap.complete
        ckpt.commit(total=0, items=11, applied=[("s1-2", 1)])
        assert ckpt.snapshot().complete
        assert ckpt.snapshot().as_json()["complete"] is True


def test_stopped_checkpoint_is_complete(tmp_path: Path) -> None:
    with opened(tmp_path / "c.sqlite") as ckpt:
        ckpt.commit(total=0, items=1, applied=[("r1.1-0", 1)], stopped_because="ci below 0.01")
        assert ckpt.snapshot().complete


def test_history_keeps_one_estimate_per_commit_that_applied_something(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    with opened(path) as ckpt:
        ckpt.commit(total=1, items=10, applied=[("s10-0", 10)], estimate={"mean": 1.0})
        ckpt.commit(total=1, items=10, applied=[], estimate={"mean": 1.0})
        ckpt.commit(total=2, items=20, applied=[("s10-1", 10)], estimate={"mean": 1.5})
    assert read_history(path) == [(10, {"mean": 1.0}), (20, {"mean": 1.5})]


# -- refusing what is not ours -------------------------------------------------------------


def test_checkpoint_of_another_job_is_refused_naming_both(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    with opened(path, "cubes") as ckpt:
        ckpt.commit(total=1, items=1, applied=[("s1-0", 1)])
    before = path.read_bytes()
    with pytest.raises(CheckpointError) as info:
        Checkpoint(path, JOB)
    assert "'cubes'" in str(info.value) and "'squares'" in str(info.value)
    assert str(path) in str(info.value)
    assert path.read_bytes() == before


def _random_bytes(path: Path) -> None:
    path.write_bytes(os.urandom(8192))


def _text(path: Path) -> None:
    path.write_text("total = 42\n")


def _half(path: Path) -> None:
    data = real_checkpoint(path).read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _header_only(path: Path) -> None:
    path.write_bytes(real_checkpoint(path).read_bytes()[:100])


DAMAGE = {"random bytes": _random_bytes, "text": _text, "half": _half, "header": _header_only}


@pytest.mark.parametrize("writer", [True, False], ids=["Checkpoint", "read_snapshot"])
@pytest.mark.parametrize("damage", DAMAGE.values(), ids=DAMAGE.keys())
def test_corrupt_checkpoint_is_refused_with_a_fix_and_left_untouched(
    tmp_path: Path, damage: object, writer: bool
) -> None:
    path = tmp_path / "c.sqlite"
    damage(path)  # type: ignore[operator]
    exc = assert_refused_untouched(path, writer=writer)
    message = str(exc)
    assert str(path) in message and "unreadable" in message and "left untouched" in message
    assert "restore it from a backup" in message and "move it away" in message


def foreign_sqlite(path: Path) -> Path:
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE other (x)")
    db.commit()
    db.close()
    return path


def test_status_of_a_foreign_sqlite_database_is_refused_untouched(tmp_path: Path) -> None:
    assert_refused_untouched(foreign_sqlite(tmp_path / "c.sqlite"), writer=False)


def test_foreign_sqlite_database_is_refused_and_left_untouched(tmp_path: Path) -> None:
    assert_refused_untouched(foreign_sqlite(tmp_path / "c.sqlite"))


class _Killed(BaseException):
    """Like SIGKILL: no handler in the code under test may catch it."""


class _DiesInSchema:
    """A connection that is killed while it creates the tables."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def executescript(self, script: str) -> None:
        self.conn.close()
        raise _Killed

    def __getattr__(self, name: str) -> object:
        return getattr(self.conn, name)


def _die(*args: object) -> None:
    raise _Killed


@pytest.mark.parametrize("when", ["creating tables", "renaming into place"])
def test_checkpoint_killed_while_being_created_reopens_as_new(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, when: str
) -> None:
    """Killed before the new file is complete: the restart must not find a file to refuse."""
    path = tmp_path / "c.sqlite"
    if when == "creating tables":
        connect = sqlite3.connect
        monkeypatch.setattr(sqlite3, "connect", lambda *a, **k: _DiesInSchema(connect(*a, **k)))
    else:
        monkeypatch.setattr("beanmill.checkpoint_file.os.replace", _die)
        monkeypatch.setattr("beanmill.checkpoint_file.os.rename", _die)
    with suppress(_Killed):
        Checkpoint(path, JOB).close()
    monkeypatch.undo()
    with opened(path) as ckpt:
        assert ckpt.snapshot().items == 0
        ckpt.commit(total=1, items=1, applied=[("s1-0", 1)])
    assert read_snapshot(path).total == 1
    ours = {"c.sqlite", "c.sqlite-wal", "c.sqlite-shm", "c.sqlite.lock", "c.sqlite.seq"}
    leftovers = {p.name for p in tmp_path.iterdir()} - ours
    assert not leftovers


# -- reading while the reducer writes ------------------------------------------------------


def test_read_snapshot_sees_committed_data_only_while_a_writer_is_open(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    with opened(path) as ckpt:
        ckpt.commit(total=5, items=5, applied=[("s5-0", 5)])
        assert read_snapshot(path).total == 5
        # A transaction in flight, as in the middle of commit(): invisible to readers.
        ckpt.db.execute("BEGIN IMMEDIATE")
        ckpt.db.execute("UPDATE meta SET value = '999' WHERE key IN ('total', 'items')")
        ckpt.db.execute("INSERT INTO ledger VALUES ('s5-1', 5, 0)")
        snap = read_snapshot(path)
        assert (snap.total, snap.items, snap.batches) == (5, 5, 1)
        ckpt.db.execute("ROLLBACK")
        ckpt.commit(total=10, items=10, applied=[("s5-1", 5)])
        snap = read_snapshot(path)
        assert (snap.total, snap.items, snap.batches) == (10, 10, 2)


def test_read_snapshot_of_a_closed_checkpoint_leaves_it_untouched(tmp_path: Path) -> None:
    path = real_checkpoint(tmp_path / "c.sqlite")
    before = path.read_bytes()
    snap = read_snapshot(path)
    assert (snap.items, snap.batches, snap.errors) == (200_000, 2000, 20)
    assert path.read_bytes() == before


def test_read_snapshot_of_a_missing_file_says_where_to_look(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="--checkpoint"):
        read_snapshot(tmp_path / "nope.sqlite")
    assert not (tmp_path / "nope.sqlite").exists()


# -- one writer at a time ------------------------------------------------------------------

WRITER_SCRIPT = """
import sys, time
from pathlib import Path
from beanmill.checkpoint import Checkpoint
ckpt = Checkpoint(Path(sys.argv[1]), "squares")
ckpt.commit(total=1, items=1, applied=[("s1-0", 1)])
print("open", flush=True)
time.sleep(120)
"""


def test_a_second_writer_in_the_same_process_is_refused_naming_the_pid(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    with opened(path) as ckpt:
        ckpt.commit(total=1, items=1, applied=[("s1-0", 1)])
        with pytest.raises(CheckpointError) as info:
            Checkpoint(path, JOB)
        message = str(info.value)
        assert message.startswith(f"checkpoint {path} is in use by another reducer")
        assert f"(pid {os.getpid()})" in message and "stop it first" in message
        assert "\n" not in message
        ckpt.commit(total=2, items=2, applied=[("s1-1", 1)])  # the holder is unharmed
    with opened(path) as again:  # let go on close
        assert again.snapshot().total == 2


def test_readers_keep_working_while_the_writer_holds_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    with opened(path) as ckpt:
        ckpt.commit(total=3, items=3, applied=[("s1-0", 3)], errors=[error("s1-1")])
        ckpt.commit(total=3, items=3, applied=[], estimate={"mean": 1.0})
        assert read_snapshot(path).total == 3
        assert set(read_errors(path)) == {"s1-1"}
        assert read_history(path) == []
        assert checkpoint.forget_errors(path, ["s1-1"]) == 1


def test_the_lock_file_is_private_whatever_the_umask(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    with umask(0), opened(path):
        assert mode(checkpoint.lock_path(path)) == 0o600


def test_a_second_writer_in_another_process_is_refused_until_the_first_dies(
    tmp_path: Path,
) -> None:
    path = tmp_path / "c.sqlite"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER_SCRIPT, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "open\n"
        with pytest.raises(CheckpointError, match=rf"in use by another reducer \(pid {proc.pid}\)"):
            Checkpoint(path, JOB)
        assert read_snapshot(path).total == 1
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        with opened(path) as ckpt:  # no stale lock to clean up after a crash
            assert ckpt.snapshot().total == 1
    finally:
        proc.kill()
        proc.wait()


# -- integrity: a flipped bit or a rollback is refused, never reported ------------------------


def tamper(path: Path, sql: str, *args: object) -> None:
    db = sqlite3.connect(path)
    db.execute(sql, args)
    db.commit()
    db.close()


def committed(path: Path, commits: int = 2) -> Path:
    with opened(path) as ckpt:
        for k in range(commits):
            ckpt.commit(total={"sum": 1000 + k}, items=k + 1, applied=[(f"s1-{k}", 1)])
    return path


@pytest.mark.parametrize("writer", [True, False], ids=["Checkpoint", "read_snapshot"])
def test_a_flipped_bit_in_the_stored_total_is_refused(tmp_path: Path, writer: bool) -> None:
    path = committed(tmp_path / "c.sqlite")
    value = sqlite3.connect(path).execute("SELECT value FROM meta WHERE key='total'").fetchone()
    assert value == ('{"sum": 1001}',)
    tamper(path, "UPDATE meta SET value = ? WHERE key = 'total'", '{"sum": 1003}')  # 1 -> 3
    message = str(assert_refused_untouched(path, writer=writer))
    assert f"checkpoint {path} fails its integrity check" in message
    assert "restore it from a backup" in message and "docs/operations.md" in message


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE meta SET value = '7' WHERE key = 'items'",
        "DELETE FROM ledger WHERE batch = 's1-0'",
        "UPDATE meta SET value = '\"other\"' WHERE key = 'stopped_because'",
    ],
    ids=["items", "ledger row", "added value"],
)
def test_any_change_to_what_the_total_depends_on_is_refused(tmp_path: Path, sql: str) -> None:
    path = committed(tmp_path / "c.sqlite")
    if "stopped_because" in sql:
        sql = "INSERT INTO meta VALUES ('stopped_because', '\"other\"')"
    tamper(path, sql)
    assert "fails its integrity check" in str(assert_refused_untouched(path))


@pytest.mark.parametrize("writer", [True, False], ids=["Checkpoint", "read_snapshot"])
def test_a_meta_value_that_is_not_json_is_one_checkpoint_error(
    tmp_path: Path, writer: bool
) -> None:
    path = committed(tmp_path / "c.sqlite")
    tamper(path, "UPDATE meta SET value = '{\"sum\": 10' WHERE key = 'total'")
    message = str(assert_refused_untouched(path, writer=writer))
    assert f"checkpoint {path} has a damaged 'total' value (not JSON)" in message


def _restore_without_wal(path: Path, old: bytes) -> None:
    path.write_bytes(old)
    for suffix in ("-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)


@pytest.mark.parametrize("writer", [True, False], ids=["Checkpoint", "read_snapshot"])
def test_a_checkpoint_that_went_back_in_time_is_refused(tmp_path: Path, writer: bool) -> None:
    path = committed(tmp_path / "c.sqlite", commits=1)
    before_commit = path.read_bytes()
    with opened(path) as ckpt:
        ckpt.commit(total={"sum": 5}, items=2, applied=[("s1-1", 1)])
    _restore_without_wal(path, before_commit)  # as if the -wal was lost after a crash
    message = str(assert_refused_untouched(path, writer=writer))
    assert message.startswith(f"checkpoint {path} was rolled back: it holds commit 1, but commit 2")
    assert "already deleted from the queue" in message and "c.sqlite.seq" in message


def test_a_backup_restored_on_purpose_opens_once_its_seq_file_is_deleted(tmp_path: Path) -> None:
    path = committed(tmp_path / "c.sqlite", commits=1)
    backup = path.read_bytes()
    with opened(path) as ckpt:
        for k in (5, 6, 7):
            ckpt.commit(total={"sum": k}, items=k, applied=[(f"s1-{k}", 1)])
    _restore_without_wal(path, backup)
    seq_path(path).unlink()
    with opened(path) as ckpt:
        assert ckpt.snapshot().total == {"sum": 1000}
        ckpt.commit(total={"sum": 2}, items=2, applied=[("s1-1", 1)])
    assert read_snapshot(path).total == {"sum": 2}


def test_a_new_checkpoint_in_place_of_one_moved_away_is_not_held_back(tmp_path: Path) -> None:
    path = committed(tmp_path / "c.sqlite", commits=3)
    path.rename(tmp_path / "old.sqlite")
    with opened(path) as ckpt:  # the old .seq file says 3; it belongs to the other file
        assert ckpt.snapshot().items == 0
        ckpt.commit(total=1, items=1, applied=[("s1-0", 1)])
    assert read_snapshot(path).total == 1


def test_a_damaged_seq_file_is_one_line_saying_what_it_is(tmp_path: Path) -> None:
    path = committed(tmp_path / "c.sqlite")
    seq_path(path).write_text("{")
    message = str(assert_refused_untouched(path))
    assert str(seq_path(path)) in message and "delete it" in message


def test_a_checkpoint_of_0_1_without_a_digest_opens_and_gets_one(tmp_path: Path) -> None:
    path = committed(tmp_path / "c.sqlite")
    tamper(path, "DELETE FROM meta WHERE key IN ('digest', 'id', 'seq')")
    seq_path(path).unlink()
    assert read_snapshot(path).total == {"sum": 1001}
    with opened(path) as ckpt:
        assert ckpt.snapshot().items == 2
        ckpt.commit(total={"sum": 7}, items=3, applied=[("s1-9", 1)])
    keys = {k for (k,) in sqlite3.connect(path).execute("SELECT key FROM meta")}
    assert {"digest", "id", "seq"} <= keys and seq_path(path).exists()
    tamper(path, "UPDATE meta SET value = '8' WHERE key = 'items'")
    assert_refused_untouched(path)
