"""The peers, Celery and RQ on a Redis broker, on beanmill's CPU map, when installed."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import time
import traceback
from pathlib import Path
from typing import Any

import workloads
from harness import (
    BENCH,
    PY,
    Context,
    Row,
    check,
    say,
)

from beanmill.beanstalk.server import free_port

PEER_CHUNK = 1000


def peers(ctx: Context, which: list[str]) -> None:
    redis_server = shutil.which("redis-server")
    missing_redis = importlib.util.find_spec("redis") is None
    for peer in which:
        module = {"celery": "celery", "rq": "rq"}[peer]
        if importlib.util.find_spec(module) is None:
            ctx.out.skip(peer, f"{module} is not installed (pip install -e '.[bench]')")
            continue
        if redis_server is None:
            ctx.out.skip(peer, "no redis-server binary on PATH (the peers' broker)")
            continue
        if missing_redis:
            ctx.out.skip(peer, "the redis Python client is not installed")
            continue
        if "cpu.roles" not in ctx.rates:
            ctx.out.skip(peer, "the cpu row did not run, so there is no beanmill rate")
            continue
        try:
            run_peer(ctx, peer, redis_server)
        except Exception as exc:
            ctx.out.fail(peer, f"{type(exc).__name__}: {exc}")
            traceback.print_exc()


def run_peer(ctx: Context, peer: str, redis_server: str) -> None:
    d = ctx.workdir(f"peer-{peer}")
    n = ctx.size.cpu
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    env = ctx.env(n, BENCH_REDIS_URL=url, PYTHONPATH=str(BENCH))
    redis_proc = ctx.procs.spawn(
        [
            redis_server,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        env=env,
        cwd=d,
        err=d / "redis.log",
    )
    workers: list[subprocess.Popen[bytes]] = []
    try:
        import redis

        conn = redis.Redis(host="127.0.0.1", port=port)
        deadline = time.monotonic() + 20
        while True:
            try:
                conn.ping()
                break
            except redis.exceptions.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        os.environ["BENCH_REDIS_URL"] = url
        say(f"{peer}: the CPU map over {n:,} items, chunks of {PEER_CHUNK}, 2 workers")
        if peer == "celery":
            rate = celery_rate(ctx, d, env, n, workers)
        else:
            rate = rq_rate(ctx, d, env, n, workers, conn)
    finally:
        for w in workers:
            ctx.procs.stop(w)
        ctx.procs.stop(redis_proc)
    base = ctx.rates["cpu.roles"]
    ctx.out.add(
        Row(
            name=peer,
            workload=f"CPU map, {n:,} items, chunks of {PEER_CHUNK}, 2 worker processes",
            measure=f"items/s of {peer} (Redis broker, workers started beforehand) ÷ "
            "beanmill roles started separately",
            items_per_s=rate,
            baseline="beanmill_cpu_roles",
            baseline_items_per_s=base,
            ratio=rate / base,
            extra={"vs_beanmill_run": rate / ctx.rates["cpu.run"]},
        )
    )


def celery_rate(
    ctx: Context, d: Path, env: dict[str, str], n: int, workers: list[subprocess.Popen[bytes]]
) -> float:
    import peer_celery

    workers.append(
        ctx.procs.spawn(
            [
                PY,
                "-m",
                "celery",
                "-A",
                "peer_celery",
                "worker",
                "--concurrency",
                "2",
                "--pool",
                "prefork",
                "--loglevel",
                "WARNING",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ],
            env=env,
            cwd=BENCH,
            err=d / "celery.log",
        )
    )
    deadline = time.monotonic() + 60
    while not peer_celery.app.control.ping(timeout=0.5):
        if workers[0].poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the celery worker did not start")
    start = time.perf_counter()
    result = peer_celery.cpu.chunks(zip(range(n)), PEER_CHUNK).group().apply_async()
    values = result.get(timeout=60 + n / 100)
    rate = n / (time.perf_counter() - start)
    total = sum(sum(chunk) for chunk in values) % workloads.MODULUS
    check(total, expected_cpu(n), "celery")
    return rate


def rq_rate(
    ctx: Context,
    d: Path,
    env: dict[str, str],
    n: int,
    workers: list[subprocess.Popen[bytes]],
    conn: Any,
) -> float:
    import rq
    from rq.registry import FailedJobRegistry, FinishedJobRegistry

    url = env["BENCH_REDIS_URL"]
    argv = [PY, "-c", "from rq.cli import main; main()", "worker", "--url", url, "bench"]
    workers.extend(
        ctx.procs.spawn(argv, env=env, cwd=BENCH, err=d / f"rq{i}.log") for i in range(2)
    )
    deadline = time.monotonic() + 60
    while len(rq.Worker.all(connection=conn)) < 2:
        if any(w.poll() is not None for w in workers) or time.monotonic() > deadline:
            raise RuntimeError("the rq workers did not start")
        time.sleep(0.05)
    queue = rq.Queue("bench", connection=conn)
    start = time.perf_counter()
    jobs: list[Any] = [  # rq's types differ between versions, and it may not be installed
        queue.enqueue(workloads.cpu_chunk, lo, min(n, lo + PEER_CHUNK))
        for lo in range(0, n, PEER_CHUNK)
    ]
    finished = FinishedJobRegistry(queue=queue)
    failed = FailedJobRegistry(queue=queue)
    deadline = time.monotonic() + 60 + n / 100
    while finished.count < len(jobs):
        if failed.count or time.monotonic() > deadline:
            raise RuntimeError("rq jobs failed or did not finish in time")
        time.sleep(0.01)
    rate = n / (time.perf_counter() - start)
    total = 0
    for job in jobs:
        job.refresh()
        value: Any = job.return_value() if hasattr(job, "return_value") else job.result
        total += int(value)
    check(total % workloads.MODULUS, expected_cpu(n), "rq")
    return rate


def expected_cpu(n: int) -> int:
    total: int = sum(workloads.cpu_map(i) for i in range(n)) % workloads.MODULUS
    return total
