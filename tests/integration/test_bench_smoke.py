"""The benchmark harness runs end to end at tiny sizes and checks its own answers.

No speed is asserted (these machines are shared and noisy): this only keeps bench/run.py
working as the code under it changes, so its numbers can be trusted when someone runs it.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "run.py"
FIELD = re.compile(r"(\w+)=(\S+)")


def test_the_bench_smoke_run_prints_a_result_per_row_and_writes_the_table(
    tmp_path: Path,
) -> None:
    results = tmp_path / "RESULTS.md"
    only = "cpu,bare,reducer,metrics"
    args = ["--smoke", "--only", only, "--cpu-rounds", "20", "--results", results]
    proc = subprocess.run(
        [sys.executable, BENCH, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "FAIL" not in proc.stdout
    rows = {}
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            name = line.split()[1]
            rows[name] = dict(FIELD.findall(line))
    for name, baseline in [
        ("cpu_map", "pool2"),
        ("bare_ids", "greenstalk_loop"),
        ("reducer_commit", "limit_20ms"),
        ("metrics_cost", "metrics_off"),
    ]:
        assert name in rows, proc.stdout
        assert rows[name]["baseline"] == baseline
        assert float(rows[name]["ratio"]) > 0
    assert float(rows["cpu_map"]["items_per_s"]) > 0
    table = results.read_text()
    assert "| `cpu_map` |" in table
    assert "| `bare_ids` |" in table
    assert "smoke run" in table
    assert "beanstalkd 1." in table  # the machine section names the server's version
