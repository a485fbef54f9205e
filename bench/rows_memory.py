"""Bounded memory: the producer over range(10**8) with backpressure, and beanstalkd's
side of the same run."""

from __future__ import annotations

import contextlib
import statistics
import time
from typing import Any

import greenstalk
import workloads
from harness import (
    MB,
    Context,
    Row,
    event_time,
    limit_row,
    proc_status_kb,
    say,
)

from beanmill.source import DEFAULT_BATCH_SIZE
from beanmill.wire import Batch, encode_batch

HIGH_WATER = 1000


def producer_row(ctx: Context) -> None:
    d = ctx.workdir("producer")
    server = ctx.procs.server(d / "binlog")
    assert server.proc is not None
    tube = workloads.Huge.name + ".items"
    stats = greenstalk.Client(("127.0.0.1", server.port), encoding=None, use=tube)
    bs_pid = server.proc.pid
    bs_start = proc_status_kb(bs_pid, "VmRSS") or 0
    proc = None
    try:
        say(
            f"producer: range(10**8) with --high-water {HIGH_WATER}, no consumers, "
            f"{ctx.size.producer_s:.0f} s"
        )
        proc = ctx.procs.spawn(
            ctx.role(
                "producer",
                "Huge",
                server.address,
                "--state",
                str(d / "cursor"),
                "--high-water",
                str(HIGH_WATER),
            ),
            env=ctx.env(0),
            cwd=d,
            err=d / "producer.log",
        )
        spawned = time.time()
        hwm = rss_mid = rss_max = 0
        ready_max = 0
        filled_at = None
        jobs_at_fill = 0
        end = time.monotonic() + ctx.size.producer_s
        mid = time.monotonic() + ctx.size.producer_s / 2
        while time.monotonic() < end:
            if proc.poll() is not None:
                raise RuntimeError(f"the producer exited {proc.returncode} early")
            hwm = max(hwm, proc_status_kb(proc.pid, "VmHWM") or 0)
            rss = proc_status_kb(bs_pid, "VmRSS") or 0
            rss_max = max(rss_max, rss)
            if time.monotonic() < mid:
                rss_mid = rss
            st: dict[str, Any] = {}
            with contextlib.suppress(greenstalk.NotFoundError):  # no job put yet
                st = dict(stats.stats_tube(tube))
            ready = int(st.get("current-jobs-ready", 0))
            ready_max = max(ready_max, ready)
            if filled_at is None and ready >= HIGH_WATER:
                filled_at = time.time()
                jobs_at_fill = int(st.get("total-jobs", 0))
            time.sleep(0.02 if filled_at is None else 0.2)
        jobs_put = int(stats.stats_tube(tube)["total-jobs"])
        job_bytes = round(
            statistics.mean(
                len(encode_batch(Batch(f"s{DEFAULT_BATCH_SIZE}-{k}", tuple(range(lo, hi)))))
                for k in range(jobs_put)
                for lo, hi in [(k * DEFAULT_BATCH_SIZE, (k + 1) * DEFAULT_BATCH_SIZE)]
            )
        )
        hwm = max(hwm, proc_status_kb(proc.pid, "VmHWM") or 0)
        rc = ctx.procs.stop(proc)
        if rc != 0:
            raise RuntimeError(f"the producer exited {rc} on SIGTERM")
        if filled_at is None:
            raise RuntimeError(f"the ready queue never reached {HIGH_WATER} jobs")
        first_put = event_time(d / "producer.log", "producer_started")
        fill_rate = jobs_at_fill * DEFAULT_BATCH_SIZE / max(1e-3, filled_at - first_put)
        peak_mb = hwm / 1024
        ctx.out.add(
            limit_row(
                "producer_rss",
                f"producer over range(10**8), --high-water {HIGH_WATER}, "
                f"no consumers, {ctx.size.producer_s:.0f} s",
                "peak RSS (VmHWM) of the producer ÷ 100 MB",
                peak_mb,
                100,
                "MB",
                shown=f"{peak_mb:.1f} MB peak",
                items_per_s=fill_rate,
                extra={
                    "producer_peak_rss_mb": peak_mb,
                    "startup_to_fill_s": filled_at - spawned,
                },
            )
        )

        held_mb = ready_max * job_bytes / MB
        growth = (rss_max - rss_mid) / 1024
        bounded = ready_max <= HIGH_WATER + HIGH_WATER // 10 and growth < max(2.0, held_mb)
        ctx.out.add(
            Row(
                name="beanstalkd_rss",
                workload="the same run, beanstalkd's side",
                measure="beanstalkd RSS; ready jobs at most high-water (+ one put budget); "
                "RSS flat in the second half",
                items_per_s=None,
                baseline="high_water_bodies",
                baseline_items_per_s=None,
                ratio=(rss_max - bs_start) / 1024 / held_mb if held_mb else None,
                target="bounded by the high-water mark",
                met=bounded,
                shown=f"{rss_max / 1024:.1f} MB ({(rss_max - bs_start) / 1024:+.1f} MB)",
                baseline_shown=f"{ready_max} jobs x {job_bytes} B = {held_mb:.1f} MB",
                extra={
                    "beanstalkd_rss_mb": rss_max / 1024,
                    "beanstalkd_rss_at_start_mb": bs_start / 1024,
                    "growth_second_half_mb": growth,
                    "ready_jobs_max": ready_max,
                    "job_bytes": job_bytes,
                },
            )
        )
    finally:
        stats.close()
        if proc is not None:
            ctx.procs.stop(proc)
        server.stop()
