"""bench/RESULTS.md, and the machine it was measured on."""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib.metadata
import importlib.util
import os
import platform
import socket
import subprocess
from pathlib import Path

import greenstalk
from harness import (
    BENCH,
    Outcome,
    Row,
    Sizes,
)


def machine() -> dict[str, str]:
    def out(argv: list[str]) -> str:
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=10)
            return (done.stdout or done.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.SubprocessError):
            return "unknown"

    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    commit = out(["git", "-C", str(BENCH), "rev-parse", "--short", "HEAD"])
    dirty = out(["git", "-C", str(BENCH), "status", "--porcelain", "--", "../src"])
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": f"{os.cpu_count()} ({model})",
        "load average at start": load,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "os": f"{platform.system()} {platform.release()}",
        "beanstalkd": out(["beanstalkd", "-v"]),
        "greenstalk": greenstalk.__version__,
        "beanmill": f"{importlib.metadata.version('beanmill')} (git {commit}"
        + (", src/ modified)" if dirty and dirty != "unknown" else ")"),
        "host": socket.gethostname(),
    }


def _num(x: float | None) -> str:
    if x is None:
        return "—"
    return f"{x:,.0f}" if x >= 100 else f"{x:,.3g}"


def write_results(
    path: Path,
    outcome: Outcome,
    info: dict[str, str],
    mode: str,
    size: Sizes,
    calib: tuple[int, float],
    elapsed: float,
) -> None:
    flag = "" if mode == "full" else f" --{mode}"
    lines = [
        "# beanmill benchmark results",
        "",
        f"`python bench/run.py{flag}` ({mode} run, {elapsed:.0f} s). "
        "Every ratio compares two figures measured in this same run, interleaved; each is "
        f"the median of {size.reps} repetition(s). See bench/README.md for what each row is.",
        "",
    ]
    if mode == "smoke":
        lines += [
            "**A smoke run checks that every row runs and gets the right answer; its sizes are "
            "too small for the ratios to mean anything (start-up dominates).**",
            "",
        ]
    lines += [
        "## Targets",
        "",
        "| row | workload | measure | beanmill | baseline | ratio | target | met |",
        "|---|---|---|---:|---:|---:|---|---|",
    ]
    for r in outcome.rows:
        if r.headline:
            lines.append(_table_row(r))
    insight = [r for r in outcome.rows if not r.headline]
    if insight:
        lines += [
            "",
            "## For insight (no target)",
            "",
            "| row | workload | measure | beanmill | baseline | ratio |",
            "|---|---|---|---:|---:|---:|",
        ]
        for r in insight:
            lines.append("|".join(_table_row(r).split("|")[:7]) + "|")
    if outcome.skips or outcome.failures:
        lines += ["", "## Not run", ""]
        lines += [f"- **{name}**: skipped: {reason}" for name, reason in outcome.skips]
        lines += [f"- **{name}**: FAILED: {reason}" for name, reason in outcome.failures]
    if outcome.notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in outcome.notes]
    lines += ["", "## Machine", ""]
    lines += [f"- {k}: {v}" for k, v in info.items()]
    lines += [
        f"- CPU map: {calib[0]} SHA-256 rounds per item, {calib[1]:.1f} µs per item when "
        "calibrated at the start of this run (one core, nothing else of ours running)",
        f"- sizes: cpu {size.cpu:,}, trivial {size.trivial:,}, io {size.io:,}, "
        f"bare IDs {size.bare:,} items; producer row {size.producer_s:.0f} s",
        "",
        "## RESULT lines",
        "",
        "```",
        *(r.line() for r in outcome.rows),
        *(f"SKIP {n} reason={why.replace(' ', '_')}" for n, why in outcome.skips),
        *(f"FAIL {n} reason={why.replace(' ', '_')[:300]}" for n, why in outcome.failures),
        "```",
        "",
    ]
    path.write_text("\n".join(lines))


def _table_row(r: Row) -> str:
    mine = r.shown or (f"{_num(r.items_per_s)} items/s" if r.items_per_s is not None else "—")
    base = r.baseline_shown or (
        f"{_num(r.baseline_items_per_s)} items/s" if r.baseline_items_per_s is not None else "—"
    )
    ratio = "—" if r.ratio is None else f"{r.ratio:.2f}"
    met = {True: "yes", False: "**no**", None: "—"}[r.met]
    cells = [f"`{r.name}`", r.workload, r.measure, mine, base, ratio, r.target, met]
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"
