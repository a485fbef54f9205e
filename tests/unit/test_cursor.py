"""The producer's cursor: atomic, private, and a damaged one is refused and left as it is."""

from __future__ import annotations

import json
import tempfile
import threading
from contextlib import suppress
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from beanmill.cursor import CURSOR_VERSION, Cursor, check_resumable, load_cursor, save_cursor
from beanmill.errors import CursorError
from support import mode, umask

CURSOR = Cursor(job="squares", batch_size=100, order="random", seed=7, next_batch=3, items_put=300)

cursors = st.builds(
    Cursor,
    job=st.text(min_size=1, max_size=40),
    batch_size=st.integers(1, 10**6),
    order=st.sampled_from(["sequential", "random"]),
    seed=st.none() | st.integers(-(2**63), 2**63),
    next_batch=st.integers(0, 10**12),
    items_put=st.integers(0, 10**15),
    finished=st.booleans(),
)


def valid_bytes(cursor: Cursor = CURSOR) -> bytes:
    return json.dumps({"v": CURSOR_VERSION, **cursor.__dict__}).encode() + b"\n"


@settings(max_examples=100, deadline=None)
@given(cursor=cursors)
def test_cursor_round_trips(cursor: Cursor) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cursor.json"
        save_cursor(path, cursor)
        assert load_cursor(path) == cursor


def test_missing_cursor_loads_as_none(tmp_path: Path) -> None:
    assert load_cursor(tmp_path / "nope.json") is None


def test_later_save_replaces_earlier(tmp_path: Path) -> None:
    path = tmp_path / "cursor.json"
    save_cursor(path, CURSOR)
    later = replace(CURSOR, next_batch=9, items_put=900, finished=True)
    save_cursor(path, later)
    assert load_cursor(path) == later


def test_cursor_file_and_new_directory_are_private_whatever_the_umask(tmp_path: Path) -> None:
    path = tmp_path / "state" / "deep" / "cursor.json"
    with umask(0):
        save_cursor(path, CURSOR)
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700


def test_save_leaves_no_tmp_file_behind(tmp_path: Path) -> None:
    path = tmp_path / "cursor.json"
    for n in range(3):
        save_cursor(path, replace(CURSOR, next_batch=n))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cursor.json"]


def test_cursor_is_never_half_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A crash before the rename leaves the previous cursor whole and loadable."""
    path = tmp_path / "cursor.json"
    save_cursor(path, CURSOR)
    before = path.read_bytes()

    def crash(src: object, dst: object) -> None:
        raise OSError("killed before rename")

    monkeypatch.setattr("beanmill.files.os.replace", crash)
    with pytest.raises(OSError, match="killed"):
        save_cursor(path, replace(CURSOR, next_batch=99))
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert load_cursor(path) == CURSOR
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cursor.json"]


@pytest.mark.parametrize("stale", ["cursor.json.tmp", ".cursor.json.k2j4x9.tmp"])
def test_stale_tmp_from_a_crash_does_not_spoil_the_next_save(tmp_path: Path, stale: str) -> None:
    path = tmp_path / "cursor.json"
    (tmp_path / stale).write_bytes(b"half a curs")
    save_cursor(path, CURSOR)
    assert load_cursor(path) == CURSOR


def test_two_producers_saving_at_once_never_crash_or_tear_the_cursor(tmp_path: Path) -> None:
    """Each save has its own temp file: no writer renames or truncates another's."""
    path = tmp_path / "cursor.json"
    saved = [replace(CURSOR, next_batch=n) for n in range(300)]
    failures: list[BaseException] = []
    loaded: list[Cursor | None] = []

    def save(cursors: list[Cursor]) -> None:
        try:
            for cursor in cursors:
                save_cursor(path, cursor)
        except BaseException as exc:
            failures.append(exc)

    def load() -> None:
        while any(t.is_alive() for t in writers):
            loaded.append(load_cursor(path))

    writers = [threading.Thread(target=save, args=(saved[k::2],)) for k in range(2)]
    reader = threading.Thread(target=load)
    for thread in [*writers, reader]:
        thread.start()
    for thread in [*writers, reader]:
        thread.join()
    assert failures == []
    assert all(cursor is None or cursor in saved for cursor in loaded)
    assert load_cursor(path) in saved[-2:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cursor.json"]


DAMAGED = {
    "garbage bytes": b"\x00\xff\x13garbage\x80",
    "empty file": b"",
    "truncated json": valid_bytes()[: len(valid_bytes()) // 2],
    "truncated tail": valid_bytes()[:-3],
    "invalid utf-8": valid_bytes().replace(b"squares", b"squ\xffres"),
    "wrong version": valid_bytes().replace(b'"v": 1', b'"v": 2'),
    "no version": json.dumps(CURSOR.__dict__).encode(),
    "missing key": json.dumps({"v": 1, "job": "squares", "order": "sequential"}).encode(),
    "unknown key": json.dumps({"v": 1, **CURSOR.__dict__, "extra": 1}).encode(),
    "json list": b"[1, 2, 3]",
    "json string": b'"cursor"',
    "json null": b"null",
    "negative next_batch": valid_bytes(replace(CURSOR, next_batch=-1)),
    "next_batch not a number": valid_bytes().replace(b'"next_batch": 3', b'"next_batch": "3"'),
}


@pytest.mark.parametrize("raw", DAMAGED.values(), ids=DAMAGED.keys())
def test_damaged_cursor_is_refused_with_a_fix_and_left_untouched(
    tmp_path: Path, raw: bytes
) -> None:
    path = tmp_path / "cursor.json"
    path.write_bytes(raw)
    with pytest.raises(CursorError) as info:
        load_cursor(path)
    message = str(info.value)
    assert str(path) in message
    assert "left as it is" in message
    assert "Delete it" in message
    assert path.read_bytes() == raw
    assert [p.name for p in tmp_path.iterdir()] == ["cursor.json"]


@settings(max_examples=300, deadline=None)
@given(raw=st.binary(max_size=200) | st.builds(lambda n: valid_bytes()[:n], st.integers(0, 150)))
def test_any_cursor_bytes_load_or_raise_cursor_error(raw: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cursor.json"
        path.write_bytes(raw)
        with suppress(CursorError):
            assert isinstance(load_cursor(path), Cursor)
        assert path.read_bytes() == raw


def test_deeply_nested_cursor_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cursor.json"
    path.write_bytes(b"[" * 100_000)
    with pytest.raises(CursorError):
        load_cursor(path)


@pytest.mark.parametrize(
    "field",
    [{"next_batch": True}, {"items_put": None}, {"batch_size": "100"}],
    ids=["bool next_batch", "null items_put", "string batch_size"],
)
def test_cursor_with_fields_of_the_wrong_type_is_refused(
    tmp_path: Path, field: dict[str, object]
) -> None:
    path = tmp_path / "cursor.json"
    path.write_text(json.dumps({"v": CURSOR_VERSION, **CURSOR.__dict__, **field}))
    with pytest.raises(CursorError):
        load_cursor(path)


# -- resuming ------------------------------------------------------------------------------


def test_check_resumable_accepts_the_same_run_at_any_position(tmp_path: Path) -> None:
    wanted = replace(CURSOR, next_batch=0, items_put=0)
    check_resumable(CURSOR, wanted, tmp_path / "cursor.json")
    check_resumable(replace(CURSOR, finished=True), wanted, tmp_path / "cursor.json")


@pytest.mark.parametrize(
    "change",
    [
        {"batch_size": 50},
        {"order": "sequential"},
        {"seed": 8},
        {"seed": None},
        {"job": "cubes"},
    ],
    ids=["batch size", "order", "seed", "no seed", "job"],
)
def test_check_resumable_refuses_another_layout(tmp_path: Path, change: dict[str, object]) -> None:
    path = tmp_path / "cursor.json"
    with pytest.raises(CursorError) as info:
        check_resumable(CURSOR, replace(CURSOR, **change), path)  # type: ignore[arg-type]
    message = str(info.value)
    assert str(path) in message
    assert "batch_size=100" in message and "order=random" in message and "seed=7" in message
    assert "rerun with those settings" in message and "delete it" in message
