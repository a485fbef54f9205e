"""`--rebuild`'s files: the mark that makes a rebuild due, and a rolled-back checkpoint
accepted; a complete checkpoint needs no rebuild."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from beanmill.checkpoint import Checkpoint, read_snapshot
from beanmill.errors import CheckpointError
from beanmill.rebuild import accept_rollback, marker_path, rebuild_due
from beanmill.status_cli import status
from beanmill.wire import EndRecord


def commit(path: Path, n: int, end: EndRecord | None = None) -> None:
    ckpt = Checkpoint(path, "job")
    try:
        ckpt.commit(total=n, items=n, applied=[(f"s1-{n}", 1)], layout="s1", end=end)
    finally:
        ckpt.close()  # the -wal goes into the file: its bytes are the whole checkpoint


def lose_last_commit(path: Path, end: EndRecord | None = None) -> None:
    """Commit 1, then 2, then the file as it was after commit 1 with no -wal."""
    commit(path, 0, end)
    before = path.read_bytes()
    commit(path, 1)
    path.write_bytes(before)
    for suffix in ("-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)


def test_a_rolled_back_checkpoint_is_accepted_once_a_rebuild_is_marked_due(
    tmp_path: Path,
) -> None:
    path = tmp_path / "c.sqlite"
    lose_last_commit(path)
    with pytest.raises(CheckpointError, match="--rebuild"):
        read_snapshot(path)
    assert not rebuild_due(path)
    accept_rollback(path)
    assert rebuild_due(path) and marker_path(path).name == "c.sqlite.rebuild"
    assert read_snapshot(path).items == 0
    accept_rollback(path)  # again, as after a crash: the same
    assert rebuild_due(path) and read_snapshot(path).items == 0


def test_a_complete_checkpoint_needs_no_rebuild(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    lose_last_commit(path, end=EndRecord(1, 1, None, "s1"))
    accept_rollback(path)
    assert read_snapshot(path).complete and not rebuild_due(path)


def test_no_checkpoint_yet_is_a_rebuild_of_everything(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    accept_rollback(path)
    assert rebuild_due(path) and not path.exists()


def test_status_says_a_rebuild_is_due_until_it_is_done(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    lose_last_commit(path)
    accept_rollback(path)
    shown = CliRunner().invoke(status, ["--checkpoint", str(path)])
    assert shown.exit_code == 0 and "rebuild:  due" in shown.output
    as_json = CliRunner().invoke(status, ["--checkpoint", str(path), "--json"])
    assert json.loads(as_json.output)["rebuild_due"] is True
    assert json.loads(as_json.output)["binlog_full"] is None  # beanstalkd was not asked
    marker_path(path).unlink()
    assert "rebuild" not in CliRunner().invoke(status, ["--checkpoint", str(path)]).output
