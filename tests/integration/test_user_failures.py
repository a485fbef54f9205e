"""The user's code fails; the run goes on: one bad item costs one item, and every run ends."""

from __future__ import annotations

import json
from pathlib import Path

from beanmill import exitcodes
from specs.files import files_answer, special
from support import Procs, finish, spec_ref

FILES = spec_ref("files:ReadFiles")


def run_args(data: Path) -> list[str]:
    return [
        "run", FILES, "--data-dir", str(data), "--batch-size", "500", "--retry-delay", "0",
    ]  # fmt: skip


def test_missing_files_fail_their_items_only_and_requeue_after_the_fix_finishes_exactly(
    procs: Procs, tmp_path: Path
) -> None:
    """The issue's own case: 5,000 items, 50 of which read a file that is missing."""
    data, files = tmp_path / "data", tmp_path / "files"
    files.mkdir()
    env = {"FILES_DIR": str(files), "FILES_ITEMS": "5000"}
    rc, out, err = finish(procs.beanmill(*run_args(data), env=env), timeout=120)
    assert rc == exitcodes.FAILED_ITEMS, err
    assert "finished with 50 failed items" in err and "beanmill requeue --data-dir" in err
    expected_good = files_answer(5000) - sum(special(5000))
    assert f"result: {expected_good}" in out

    rc, out, err = finish(procs.beanmill("status", "--data-dir", str(data), "--json"))
    assert rc == 0, err
    snap = json.loads(out)
    assert (snap["failed_items"], snap["items"], snap["complete"]) == (50, 4950, True)

    rc, out, err = finish(procs.beanmill("buried", "--data-dir", str(data), "--json"))
    assert rc == 0, err
    listed = [j for j in json.loads(out) if j["item"] is not None]
    assert sorted(j["item"] for j in listed) == special(5000)
    assert all(j["exception"].startswith("FileNotFoundError") for j in listed)
    assert all(j["attempts"] == 3 for j in listed)

    for i in special(5000):  # the fix
        (files / f"{i}.txt").write_text("0")
    rc, out, err = finish(procs.beanmill("requeue", "--data-dir", str(data)))
    assert rc == 0, err
    assert "requeued 50 failed items" in out

    rc, out, err = finish(procs.beanmill(*run_args(data), env=env), timeout=120)
    assert rc == exitcodes.OK, err
    assert f"result: {files_answer(5000)}" in out
    rc, out, _ = finish(procs.beanmill("status", "--data-dir", str(data), "--json"))
    snap = json.loads(out)
    assert (snap["failed_items"], snap["items"], snap["total"]) == (0, 5000, files_answer(5000))
