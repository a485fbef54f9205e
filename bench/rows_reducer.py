"""The reducer at 10**7 items: one checkpoint commit, and the time to resume."""

from __future__ import annotations

import statistics
import subprocess
import time
from pathlib import Path

import workloads
from harness import (
    PY,
    Context,
    events,
    limit_row,
    say,
)

from beanmill.checkpoint import Checkpoint

REDUCER_ITEMS = 10**7
REDUCER_BATCH = 200
#: A normal staged set for one commit: what one reserve_many (RESERVE_AT_ONCE) brings.
STAGED_BATCHES = 200


def reducer_row(ctx: Context) -> None:
    d = ctx.workdir("reducer")
    path = d / "checkpoint.sqlite"
    n_batches = REDUCER_ITEMS // REDUCER_BATCH
    say(f"reducer: building a checkpoint of {REDUCER_ITEMS:,} items in {n_batches:,} batches")
    ckpt = Checkpoint(path, workloads.ReducerResume.name)
    total = 0
    items = 0
    step = 5_000
    for start in range(0, n_batches, step):
        applied = [(f"s{REDUCER_BATCH}-{s}", REDUCER_BATCH) for s in range(start, start + step)]
        items += REDUCER_BATCH * len(applied)
        total += len(applied)
        ckpt.commit(total=total, items=items, applied=applied, layout=f"s{REDUCER_BATCH}")
    commit_s, with_snap_s = [], []
    seq = n_batches
    for _ in range(15):
        applied = [
            (f"s{REDUCER_BATCH}-{s}", REDUCER_BATCH) for s in range(seq, seq + STAGED_BATCHES)
        ]
        seq += STAGED_BATCHES
        items += REDUCER_BATCH * len(applied)
        t0 = time.perf_counter()
        ckpt.commit(total=total, items=items, applied=applied)
        t1 = time.perf_counter()
        ckpt.snapshot()  # what Reducer.commit() reads back after every commit
        t2 = time.perf_counter()
        commit_s.append(t1 - t0)
        with_snap_s.append(t2 - t0)
    ids = [f"s{REDUCER_BATCH}-{s}" for s in range(0, n_batches, n_batches // 1000)]
    t0 = time.perf_counter()
    for b in ids:
        ckpt.applied([b])
    lookup_us = (time.perf_counter() - t0) / len(ids) * 1e6
    ckpt.close()
    commit_ms = statistics.median(commit_s) * 1000
    cycle_ms = statistics.median(with_snap_s) * 1000
    ctx.out.add(
        limit_row(
            "reducer_commit",
            f"checkpoint with {REDUCER_ITEMS:,} items, {seq:,} ledger batches",
            f"one Checkpoint.commit() of {STAGED_BATCHES} batches (median of 15) ÷ 20 ms",
            commit_ms,
            20,
            "ms",
            shown=f"{commit_ms:.2f} ms",
            items_per_s=STAGED_BATCHES * REDUCER_BATCH / (commit_ms / 1000),
            extra={
                "commit_ms": commit_ms,
                "commit_max_ms": max(commit_s) * 1000,
                "commit_plus_snapshot_ms": cycle_ms,
                "ledger_lookup_us": lookup_us,
            },
        )
    )
    server = ctx.procs.server(d / "binlog")
    floor: list[float] = []
    resume: list[float] = []
    try:
        for rep in range(ctx.size.resume_reps):
            say(f"reducer: resume from the checkpoint ({rep + 1}/{ctx.size.resume_reps})")
            t0 = time.perf_counter()
            subprocess.run(
                [PY, "-m", "beanmill", "--version"],
                env=ctx.env(0),
                cwd=d,
                capture_output=True,
                check=True,
                timeout=60,
            )
            floor.append(time.perf_counter() - t0)
            resume.append(resume_once(ctx, d, server.address, path))
    finally:
        server.stop()
    resume_s = statistics.median(resume)
    ctx.out.add(
        limit_row(
            "reducer_resume",
            f"`beanmill reducer` on the {REDUCER_ITEMS:,}-item checkpoint",
            "process start → `reducer_started` log event ÷ 2 s",
            resume_s,
            2,
            "s",
            shown=f"{resume_s:.2f} s",
            extra={
                "resume_s": resume_s,
                "runs": resume,
                "cli_floor_s": statistics.median(floor),
            },
        )
    )


def resume_once(ctx: Context, d: Path, address: str, path: Path) -> float:
    argv = ctx.role(
        "reducer", "ReducerResume", address, "--checkpoint", str(path), "--keep-running"
    )
    start = time.perf_counter()
    proc = ctx.procs.spawn(argv, env=ctx.env(0), cwd=d, err=d / "resume.log")
    try:
        while True:
            if any(e.get("event") == "reducer_started" for e in events(d / "resume.log")):
                return time.perf_counter() - start
            if proc.poll() is not None:
                raise RuntimeError(f"the reducer exited {proc.returncode} before resuming")
            if time.perf_counter() - start > 60:
                raise RuntimeError("the reducer did not resume within 60 s")
            time.sleep(0.005)
    finally:
        ctx.procs.stop(proc)
