"""The Celery peer: the CPU map as a Celery task, for `bench/run.py` (Redis as broker and
result backend at BENCH_REDIS_URL). Started as `celery -A peer_celery worker` from bench/."""

from __future__ import annotations

import os

import workloads
from celery import Celery

URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")

app = Celery("beanmill-bench", broker=URL, backend=URL)
app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    broker_connection_retry_on_startup=True,
)


@app.task(name="bench.cpu")
def cpu(item: int) -> int:
    return workloads.cpu_map(item)
