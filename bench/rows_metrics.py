"""`metrics_cost`: the cpu_map run with /metrics served and scraped against the same run
without, interleaved, so the cost of being watched is measured side by side."""

from __future__ import annotations

import statistics
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

from harness import Context, Row, check, say
from rows_work import CPU_TARGET_US, Work, pool_rate, run_cmd, work_for

from beanmill.beanstalk.server import free_port

#: Prometheus scrapes every 15 s by default: once a second is far more eager than a deployment.
SCRAPE_EVERY_S = 1.0
#: The issue's bound: metrics on cost under 2% of the items/s.
TARGET = 0.98


@contextmanager
def scraping(port: int) -> Iterator[list[int]]:
    """GET /metrics every SCRAPE_EVERY_S while the run lasts; yields a list holding the count
    of good scrapes (so the row shows the metrics were really served)."""
    done = threading.Event()
    good = [0]

    def scrape() -> None:
        while not done.wait(SCRAPE_EVERY_S):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                    r.read()
                good[0] += 1
            except (urllib.error.URLError, OSError):
                pass  # not listening yet (the reducer starts last), or gone at the end

    thread = threading.Thread(target=scrape, name="scraper", daemon=True)
    thread.start()
    try:
        yield good
    finally:
        done.set()
        thread.join()


def metrics_run(ctx: Context, work: Work) -> tuple[float, int, float, int]:
    """`run_cmd` of `beanmill run --http 127.0.0.1:PORT`, scraped; and the good scrapes."""
    port = free_port()
    with scraping(port) as good:
        rate, total, cpu = run_cmd(ctx, work, "--http", f"127.0.0.1:{port}")
    return rate, total, cpu, good[0]


def metrics_row(ctx: Context) -> None:
    """Pairs of runs, metrics off then on and on then off in turn, so drift and the noise
    of other tenants hit both sides; the ratio is the median of the pairs' ratios."""
    work = work_for("cpu", ctx.size)
    say(f"metrics_cost: the expected total, from multiprocessing.Pool(2) over {work.n:,} items")
    expected = pool_rate(ctx, work)[1]
    off_rates, on_rates, ratios, scrapes = [], [], [], []
    cpu: dict[str, list[float]] = {"off": [], "on": []}
    for rep in range(ctx.size.reps):
        say(f"metrics_cost rep {rep + 1}/{ctx.size.reps}: beanmill run, /metrics off and on")
        pair: dict[str, float] = {}
        for side in ("off", "on") if rep % 2 == 0 else ("on", "off"):
            if side == "on":
                rate, total, used, good = metrics_run(ctx, work)
                scrapes.append(good)
            else:
                rate, total, used = run_cmd(ctx, work)
            check(total, expected, f"metrics_cost: beanmill run, metrics {side}")
            pair[side] = rate
            cpu[side].append(used / work.n * 1e6)
        say(f"metrics_cost: off {pair['off']:,.0f}/s, on {pair['on']:,.0f}/s")
        off_rates.append(pair["off"])
        on_rates.append(pair["on"])
        ratios.append(pair["on"] / pair["off"])
    ratio = statistics.median(ratios)
    # CPU per item moves less than wall time when other tenants load the machine
    cpu_off, cpu_on = statistics.median(cpu["off"]), statistics.median(cpu["on"])
    ctx.out.add(
        Row(
            name="metrics_cost",
            workload=f"CPU map ~{CPU_TARGET_US:.0f} µs/item, {work.n:,} items",
            measure="items/s of `run --http` scraped every second ÷ the same run without",
            items_per_s=statistics.median(on_rates),
            baseline="metrics_off",
            baseline_items_per_s=statistics.median(off_rates),
            ratio=ratio,
            target=f"≥ {TARGET}",
            met=ratio >= TARGET,
            extra={
                "cost_pct": 100 * (1 - ratio),
                "cpu_us_per_item_off": cpu_off,
                "cpu_us_per_item_on": cpu_on,
                "cpu_cost_pct": 100 * (cpu_on / cpu_off - 1),
                "n": work.n,
                "reps": ctx.size.reps,
                "ratios": ratios,
                "scrapes": scrapes,
            },
        )
    )
