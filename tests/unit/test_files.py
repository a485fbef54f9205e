"""Files beanmill writes: private whatever the umask, never through a symlink, replaced
atomically, and a lock that one open file holds."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from beanmill.files import atomic_write, lock_file, lock_holder, open_private_append
from support import mode, umask


@pytest.mark.parametrize("mask", [0, 0o022, 0o277], ids=oct)
def test_a_progress_file_is_private_whatever_the_umask(tmp_path: Path, mask: int) -> None:
    path = tmp_path / "progress.jsonl"
    with umask(mask), open_private_append(path) as out:
        out.write('{"items": 1}\n')
    with umask(mask), open_private_append(path) as out:
        out.write('{"items": 2}\n')
    assert mode(path) == 0o600
    assert path.read_text() == '{"items": 1}\n{"items": 2}\n'  # appended, never truncated


def test_an_existing_readable_progress_file_is_made_private(tmp_path: Path) -> None:
    path = tmp_path / "progress.jsonl"
    path.write_text("old\n")
    path.chmod(0o644)
    with open_private_append(path) as out:
        out.write("new\n")
    assert mode(path) == 0o600 and path.read_text() == "old\nnew\n"


def test_a_progress_file_is_never_opened_through_a_symlink(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_text("precious\n")
    (tmp_path / "progress.jsonl").symlink_to(target)
    with pytest.raises(OSError):
        open_private_append(tmp_path / "progress.jsonl")
    assert target.read_text() == "precious\n"


def test_atomic_write_is_private_whatever_the_umask(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    with umask(0):
        atomic_write(path, b"{}\n")
    assert mode(path) == 0o600 and path.read_bytes() == b"{}\n"


def test_a_failed_atomic_write_leaves_the_old_file_and_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "state.json"
    atomic_write(path, b"old\n")

    def full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("beanmill.files.os.fsync", full)
    with pytest.raises(OSError, match="No space"):
        atomic_write(path, b"new\n")
    monkeypatch.undo()
    assert path.read_bytes() == b"old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_a_lock_is_held_by_one_open_file_and_names_its_pid(tmp_path: Path) -> None:
    path = tmp_path / "c.lock"
    with umask(0):
        fd = lock_file(path)
    assert fd is not None and mode(path) == 0o600
    assert lock_file(path) is None  # a second open conflicts, even in this process
    assert lock_holder(path) == os.getpid()
    os.close(fd)
    again = lock_file(path)
    assert again is not None
    os.close(again)


def test_a_lock_file_is_never_taken_through_a_symlink(tmp_path: Path) -> None:
    (tmp_path / "c.lock").symlink_to(tmp_path / "target")
    with pytest.raises(OSError):
        lock_file(tmp_path / "c.lock")
    assert not (tmp_path / "target").exists()
