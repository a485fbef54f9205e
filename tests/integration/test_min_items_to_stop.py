"""--min-items-to-stop: a sampled run whose interval is tight early goes on to the minimum,
says so once, and then stops by itself."""

from __future__ import annotations

import json
from pathlib import Path

from support import Procs, finish, status

EXAMPLE = Path(__file__).parents[2] / "examples" / "sampled_mean.py"
CYCLES = "25"  # 4096 * 25 = 102,400 records
MIN_ITEMS = 10_000


def test_a_loose_target_met_early_waits_for_min_items_to_stop_then_stops(
    procs: Procs, tmp_path: Path
) -> None:
    """Batches of 10 and the reducer's doubling commits mean a commit lands between 4,000
    and 10,000 items, where --until-rel-ci 0.5 already holds (the values' skewness asks for
    ~210 items): that stop is held back, and the first commit past 10,000 stops the run."""
    data, progress = tmp_path / "data", tmp_path / "progress.jsonl"
    args = ["run", f"{EXAMPLE}:RecordSize", "--data-dir", str(data), "--order", "random"]
    args += ["--seed", "3", "--batch-size", "10", "--until-rel-ci", "0.5"]
    args += ["--min-items-to-stop", str(MIN_ITEMS), "--progress-file", str(progress)]
    rc, _, err = finish(procs.beanmill(*args, env={"SAMPLED_CYCLES": CYCLES}), timeout=180)
    assert rc == 0, err
    snap = status(data / "checkpoint.sqlite")
    assert "relative half-width" in snap["stopped_because"]
    assert MIN_ITEMS <= snap["items"] < 4096 * int(CYCLES), "stopped after the minimum, early"
    reports = [json.loads(line)["report"] for line in progress.read_text().splitlines()]
    held = [r for r in reports if f"held back to --min-items-to-stop {MIN_ITEMS:,}" in r]
    assert len(held) == 1, reports
