"""beanmill's performance rows, each a ratio to a baseline measured in the same run.

    python bench/run.py            # every row this machine can run (under 15 minutes)
    python bench/run.py --quick    # the same rows at 1/5 of the sizes (under 2 minutes)
    python bench/run.py --only cpu,bare

Prints one `RESULT <name> items_per_s=<x> baseline=<name> ratio=<r> [key=value ...]` line
per row on stdout (progress goes to stderr), a `SKIP <name> reason=...` line per row that
cannot run here, and writes bench/RESULTS.md. See bench/README.md for what every row means.

Every process it starts (beanstalkd, beanmill roles, Redis and peer workers) is stopped in a
`finally`, and everything it writes goes to a temporary directory that is removed at the end.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import rows_bare
import rows_memory
import rows_metrics
import rows_peers
import rows_reducer
import rows_work
import workloads
from harness import BENCH, Context, Outcome, Procs, say, sizes
from report import machine, write_results

ROWS = ("cpu", "trivial", "io", "bare", "producer", "reducer", "metrics", "peers")


def calibrate() -> tuple[int, float]:
    """SHA-256 rounds for ~50 µs per item on this machine, fitted as a + b * rounds."""

    def per_item(rounds: int) -> float:
        best = math.inf
        for _ in range(5):
            start = time.perf_counter()
            for i in range(300):
                workloads.cpu_map(i, rounds)
            best = min(best, time.perf_counter() - start)
        return best / 300 * 1e6

    low, high = per_item(10), per_item(200)
    slope = (high - low) / 190
    fixed = low - 10 * slope
    rounds = max(1, round((rows_work.CPU_TARGET_US - fixed) / slope))
    return rounds, per_item(rounds)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    size_group = parser.add_mutually_exclusive_group()
    size_group.add_argument("--quick", action="store_true", help="1/5 of the sizes, one repetition")
    size_group.add_argument(
        "--smoke", action="store_true", help="tiny sizes: checks the harness, measures nothing"
    )
    parser.add_argument("--only", default=",".join(ROWS), help=f"rows to run, of {ROWS}")
    parser.add_argument("--reps", type=int, default=None, help="repetitions of each row")
    parser.add_argument("--cpu-rounds", type=int, default=None, help="skip the calibration")
    parser.add_argument(
        "--results",
        type=Path,
        default=BENCH / "RESULTS.md",
        help="where to write the table [default: bench/RESULTS.md]",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    only = [x.strip() for x in args.only.split(",") if x.strip()]
    unknown = set(only) - set(ROWS)
    if unknown:
        parser.error(f"unknown rows {sorted(unknown)}: choose from {ROWS}")
    if shutil.which("beanstalkd") is None:
        print("bench: beanstalkd is not installed (apt-get install beanstalkd)", file=sys.stderr)
        return 2
    began = time.monotonic()
    info = machine()
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    size = sizes(mode, args.reps)
    if args.cpu_rounds:
        rounds = args.cpu_rounds
        calib = (rounds, 0.0)
    else:
        say("calibrating the CPU map")
        calib = calibrate()
        rounds = calib[0]
    workloads.ROUNDS = rounds
    os.environ["BENCH_CPU_ROUNDS"] = str(rounds)
    say(f"CPU map: {rounds} SHA-256 rounds, {calib[1]:.1f} µs per item")
    outcome = Outcome()
    procs = Procs()
    tmp = Path(tempfile.mkdtemp(prefix="beanmill-bench-"))
    ctx = Context(tmp, size, rounds, procs, outcome)
    plan = [step for key, steps in _plan(ctx).items() if key in only for step in steps]
    try:
        for name, step in plan:
            try:
                step()
            except Exception as exc:
                outcome.fail(name, f"{type(exc).__name__}: {exc}")
                traceback.print_exc()
            finally:
                procs.stop_all()
    except KeyboardInterrupt:
        say("interrupted: stopping everything we started")
        procs.stop_all()
        return 130
    finally:
        procs.stop_all()
        if args.keep:
            say(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    elapsed = time.monotonic() - began
    write_results(args.results, outcome, info, mode, size, calib, elapsed)
    say(f"done in {elapsed:.0f} s; wrote {args.results}")
    return 1 if outcome.failures else 0


def _plan(ctx: Context) -> dict[str, list[tuple[str, Callable[[], None]]]]:
    """Each --only key and the steps it runs, in the order they run."""

    def work(key: str, target: float, baseline: str) -> Callable[[], None]:
        return lambda: rows_work.work_row(ctx, rows_work.work_for(key, ctx.size), target, baseline)

    return {
        "cpu": [("cpu_map", work("cpu", 0.85, "pool2"))],
        "trivial": [
            ("trivial_map", work("trivial", 0.3, "pool2")),
            ("consumer_floor", lambda: rows_work.consumer_floor(ctx)),
            ("run_startup", lambda: rows_work.trivial_bound(ctx)),
        ],
        "io": [("io_map", work("io", 0.8, "ideal"))],
        "bare": [("bare_ids", lambda: rows_bare.bare_row(ctx))],
        "producer": [("producer_rss", lambda: rows_memory.producer_row(ctx))],
        "reducer": [("reducer", lambda: rows_reducer.reducer_row(ctx))],
        "metrics": [("metrics_cost", lambda: rows_metrics.metrics_row(ctx))],
        "peers": [("peers", lambda: rows_peers.peers(ctx, ["celery", "rq"]))],
    }


if __name__ == "__main__":
    sys.exit(main())
