"""One job per item: bare IDs from a foreign producer, beanmill's consumers and reducer
against greenstalk's own reserve/delete loop."""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import signal
import statistics
import subprocess
import time
from typing import Any

import greenstalk
import workloads
from harness import (
    Context,
    CpuWatch,
    Row,
    check,
    cpu_seconds,
    say,
    wait_event,
)

from beanmill.checkpoint import read_snapshot

#: The bare-ID row's second reducer setting, to show what the commit interval costs.
FAST_COMMIT_S = 0.2


def put_bare(ctx: Context, address: str, tube: str, n: int) -> float:
    """The foreign producer: greenstalk, one put per item, one round trip each."""
    host, _, port = address.rpartition(":")
    client = greenstalk.Client((host, int(port)), encoding=None, use=tube)
    try:
        start = time.perf_counter()
        for i in range(n):
            client.put(b"%d" % i, ttr=300)
        return time.perf_counter() - start
    finally:
        client.close()


def bare_baseline(ctx: Context, n: int) -> dict[str, Any]:
    """greenstalk's own loop: put n bodies, then 2 processes reserve + delete each."""
    d = ctx.workdir("bare-greenstalk")
    server = ctx.procs.server(d / "binlog")
    assert server.proc is not None
    tube = workloads.BareSum.name + ".items"
    forking = mp.get_context("fork")
    ready = forking.Barrier(3)
    go = forking.Event()
    counts = forking.Array("d", 4)  # jobs deleted by each worker, then their CPU seconds
    workers = [
        forking.Process(target=_drain, args=(server.port, tube, ready, go, counts, i))
        for i in range(2)
    ]
    try:
        for w in workers:
            w.start()
        ready.wait(30)
        put_s = put_bare(ctx, server.address, tube, n)
        server_cpu = cpu_seconds(server.proc.pid) or 0.0
        start = time.perf_counter()
        go.set()
        for w in workers:
            w.join(60 + n / 100)
        drain_s = time.perf_counter() - start
        server_cpu = (cpu_seconds(server.proc.pid) or 0.0) - server_cpu
        if counts[0] + counts[1] != n:
            raise RuntimeError(f"greenstalk loop deleted {counts[0] + counts[1]} of {n}")
        return {
            "put_s": put_s,
            "drain_s": drain_s,
            "cpu": {"consumers": counts[2] + counts[3], "beanstalkd": server_cpu},
        }
    finally:
        for w in workers:
            if w.is_alive():
                w.kill()
                w.join()
        server.stop()


def bare_beanmill(ctx: Context, n: int, commit_interval: float | None = None) -> dict[str, Any]:
    """The same puts, then 2 `beanmill consumer` and a `beanmill reducer` (started, then
    the consumers paused with SIGSTOP while the puts run, so neither their start-up nor
    the put loop is in the drain time): until the consumers deleted every job, and until
    the checkpoint counts every item (the reducer sees no `end` record for bare IDs).
    `status --json` reads that count with read_snapshot(); so does this, in process."""
    d = ctx.workdir("bare-beanmill")
    server = ctx.procs.server(d / "binlog")
    env = ctx.env(0)
    ckpt = d / "checkpoint.sqlite"
    cls = "BareSum"
    tube = workloads.BareSum.name + ".items"
    started: list[subprocess.Popen[bytes]] = []
    stats = greenstalk.Client(("127.0.0.1", server.port), encoding=None)
    extra = [] if commit_interval is None else ["--commit-interval", str(commit_interval)]
    try:
        reducer = ctx.procs.spawn(
            ctx.role("reducer", cls, server.address, "--checkpoint", str(ckpt), *extra),
            env=env,
            cwd=d,
            err=d / "reducer.log",
        )
        started.append(reducer)
        consumers = [
            ctx.procs.spawn(
                ctx.role("consumer", cls, server.address),
                env=env,
                cwd=d,
                err=d / f"consumer{i}.log",
            )
            for i in range(2)
        ]
        started += consumers
        wait_event(d / "reducer.log", "reducer_started", reducer)
        for i, c in enumerate(consumers):
            wait_event(d / f"consumer{i}.log", "consumer_started", c)
        for c in consumers:
            c.send_signal(signal.SIGSTOP)
        put_s = put_bare(ctx, server.address, tube, n)
        assert server.proc is not None
        watch = CpuWatch(
            {
                "reducer": [reducer.pid],
                "consumers": [c.pid for c in consumers],
                "beanstalkd": [server.proc.pid],
            }
        )
        watch.mark()
        start = time.perf_counter()
        for c in consumers:
            c.send_signal(signal.SIGCONT)
        drained = committed = None
        deadline = time.monotonic() + 60 + n / 100
        last_read = 0.0
        while committed is None:
            if time.monotonic() > deadline:
                raise RuntimeError("beanmill did not apply every bare item in time")
            if any(p.poll() is not None for p in started):
                raise RuntimeError("a beanmill role exited during the bare-ID row")
            now = time.perf_counter()
            if drained is None and int(stats.stats_tube(tube)["cmd-delete"]) >= n:
                drained = now - start
                watch.sample()
            if now - last_read >= 0.05:
                last_read = now
                with contextlib.suppress(Exception):  # not created until the first commit
                    if read_snapshot(ckpt).items >= n:
                        committed = now - start
            time.sleep(0.01)
        watch.sample()
        snap = read_snapshot(ckpt)
        check(int(snap.total), workloads.expected_bare(n), "bare IDs")  # type: ignore[arg-type]
        return {
            "put_s": put_s,
            "drained_s": drained if drained is not None else committed,
            "committed_s": committed,
            "cpu": watch.used(),
        }
    finally:
        stats.close()
        for proc in started:
            ctx.procs.stop(proc)
        server.stop()


def bare_row(ctx: Context) -> None:
    n = ctx.size.bare
    base_total, bm_total, base_drain, bm_drain, bm_commit, puts = [], [], [], [], [], []
    fast_commit, cpus, base_cpus = [], [], []
    for rep in range(ctx.size.reps):
        tag = f"bare rep {rep + 1}/{ctx.size.reps}"
        say(f"{tag}: greenstalk put + 2 x reserve/delete over {n:,} bare IDs")
        base = bare_baseline(ctx, n)
        put_s, drain_s = base["put_s"], base["drain_s"]
        base_cpus.append(base["cpu"])
        base_total.append(n / (put_s + drain_s))
        base_drain.append(n / drain_s)
        puts.append(n / put_s)
        say(f"{tag}: greenstalk put + 2 beanmill consumers + reducer")
        got = bare_beanmill(ctx, n)
        bm_total.append(n / (got["put_s"] + got["committed_s"]))
        bm_drain.append(n / got["drained_s"])
        bm_commit.append(n / got["committed_s"])
        puts.append(n / got["put_s"])
        cpus.append(got["cpu"])
        say(f"{tag}: the same with the reducer's --commit-interval {FAST_COMMIT_S}")
        fast = bare_beanmill(ctx, n, commit_interval=FAST_COMMIT_S)
        fast_commit.append(n / fast["committed_s"])
        say(
            f"{tag}: greenstalk drain {n / drain_s:,.0f}/s, beanmill deleted "
            f"{n / got['drained_s']:,.0f}/s, committed {n / got['committed_s']:,.0f}/s "
            f"({n / fast['committed_s']:,.0f}/s with --commit-interval {FAST_COMMIT_S})"
        )
    ratios = [b / a for a, b in zip(base_total, bm_total, strict=True)]
    ratio = statistics.median(ratios)
    ctx.out.add(
        Row(
            name="bare_ids",
            workload=f"one job per item, {n:,} bare IDs from a foreign greenstalk producer",
            measure="items/s (put + until checkpointed) of 2 `beanmill consumer` + reducer "
            "÷ greenstalk put + 2 processes reserve/delete",
            items_per_s=statistics.median(bm_total),
            baseline="greenstalk_loop",
            baseline_items_per_s=statistics.median(base_total),
            ratio=ratio,
            target="≥ 1.0",
            met=ratio >= 1.0,
            extra={
                "n": n,
                "reps": ctx.size.reps,
                "ratios": ratios,
                "put_items_per_s": statistics.median(puts),
            },
        )
    )
    drain_ratios = [b / a for a, b in zip(base_drain, bm_commit, strict=True)]
    deleted_ratios = [b / a for a, b in zip(base_drain, bm_drain, strict=True)]
    fast_ratios = [b / a for a, b in zip(base_drain, fast_commit, strict=True)]
    cpu = {role: statistics.median(c[role] for c in cpus) / n * 1e6 for role in cpus[0]}
    ctx.out.add(
        Row(
            name="bare_ids.drain",
            workload=f"{n:,} bare IDs already queued",
            measure="consume side only: until checkpointed ÷ greenstalk reserve/delete",
            items_per_s=statistics.median(bm_commit),
            baseline="greenstalk_drain",
            baseline_items_per_s=statistics.median(base_drain),
            ratio=statistics.median(drain_ratios),
            extra={
                "ratios": drain_ratios,
                **{f"cpu_us_per_item_{k}": v for k, v in cpu.items()},
            },
            headline=False,
        )
    )
    base_cpu = {
        role: statistics.median(c[role] for c in base_cpus) / n * 1e6 for role in base_cpus[0]
    }
    ctx.out.add(
        Row(
            name="bare_ids.deleted",
            workload=f"{n:,} bare IDs already queued",
            measure="consume side only: until the consumers deleted every job ÷ greenstalk",
            items_per_s=statistics.median(bm_drain),
            baseline="greenstalk_drain",
            baseline_items_per_s=statistics.median(base_drain),
            ratio=statistics.median(deleted_ratios),
            extra={
                "ratios": deleted_ratios,
                **{f"baseline_cpu_us_per_item_{k}": v for k, v in base_cpu.items()},
            },
            headline=False,
        )
    )
    ctx.out.add(
        Row(
            name="bare_ids.fast_commit",
            workload=f"{n:,} bare IDs already queued",
            measure=f"as bare_ids.drain, reducer --commit-interval {FAST_COMMIT_S} (default 2)",
            items_per_s=statistics.median(fast_commit),
            baseline="greenstalk_drain",
            baseline_items_per_s=statistics.median(base_drain),
            ratio=statistics.median(fast_ratios),
            extra={"ratios": fast_ratios},
            headline=False,
        )
    )


def _drain(port: int, tube: str, ready: Any, go: Any, counts: Any, index: int) -> None:
    """greenstalk's own consumer loop, in a forked process: reserve, delete, until empty."""
    client = greenstalk.Client(("127.0.0.1", port), encoding=None, watch=tube)
    ready.wait(30)
    go.wait(60)
    cpu0 = time.process_time()
    done = 0
    while True:
        try:
            job = client.reserve(timeout=0)
        except greenstalk.TimedOutError:
            break
        client.delete(job)
        done += 1
    counts[index] = done
    counts[2 + index] = time.process_time() - cpu0
    client.close()
