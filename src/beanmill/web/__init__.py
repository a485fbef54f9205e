"""Observability over HTTP (`--http`): Prometheus metrics, the status document and the live
dashboard, wired to each role here so the roles' loops only call a hook or two."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from beanmill.web.address import HttpAddress, parse_http

# The server and prometheus-client are imported when a role serves, not when it starts:
# a role without --http pays nothing for them.
if TYPE_CHECKING:
    from beanmill.consumer import Consumer
    from beanmill.metrics import Live, TubeStats
    from beanmill.reducer import Reducer
    from beanmill.web.http import HttpServer
    from beanmill.web.status import Report

__all__ = [
    "HttpAddress",
    "http_address",
    "http_options",
    "serve_checkpoint",
    "serve_consumer",
    "serve_reducer",
]

F = TypeVar("F", bound=Callable[..., Any])


def http_options(fn: F) -> F:
    """`--http HOST:PORT` and `--http-public`, for every command that serves."""
    fn = click.option(
        "--http-public",
        is_flag=True,
        help="allow --http on an address other than loopback (no authentication!)",
    )(fn)
    return click.option(
        "--http",
        default=None,
        metavar="HOST:PORT",
        help="serve /metrics, /api/status and the dashboard here (loopback only unless "
        "--http-public)",
    )(fn)


def http_address(text: str | None, public: bool) -> HttpAddress | None:
    return parse_http(text, public) if text else None


def serve_consumer(consumer: Consumer, address: HttpAddress) -> HttpServer:
    """/metrics of one consumer: maps, failures, retries, time per batch, whether paused."""
    from beanmill.metrics import ConsumerMetrics, new_registry
    from beanmill.web.http import HttpServer

    registry = new_registry()
    metrics = ConsumerMetrics(consumer.spec.name, registry)
    metrics.watch_pause(lambda: consumer.waits.paused)
    metrics.watch_disk(lambda: consumer.queue.binlog_waits.waiting_since is not None)
    consumer.metrics = metrics
    return HttpServer(address, registry)


def serve_reducer(reducer: Reducer, address: HttpAddress) -> HttpServer:
    """Everything: the checkpoint's series, the tubes', the fold's, and the dashboard."""
    from beanmill.metrics import Live, TubeStats

    spec = reducer.spec
    live = Live(
        seen=reducer.fold.seen,
        population=reducer.population,
        disk_full=lambda: reducer.queue.binlog_waits.waiting_since is not None,
    )
    tubes = TubeStats(reducer.queue.address, spec.tubes)
    return _serve(spec.name, reducer.ckpt.path, address, live, tubes, spec.report)


def serve_checkpoint(job: str, checkpoint: Path, address: HttpAddress) -> HttpServer:
    """The dashboard and /metrics of a checkpoint alone (`beanmill dashboard`)."""
    return _serve(job, checkpoint, address, None, None, None)


def _serve(
    job: str,
    checkpoint: Path,
    address: HttpAddress,
    live: Live | None,
    tubes: TubeStats | None,
    report: Report | None,
) -> HttpServer:
    from beanmill.metrics import CheckpointCollector, RateTracker, new_registry
    from beanmill.web.http import HttpServer
    from beanmill.web.status import StatusSource

    registry = new_registry()
    rates = RateTracker()
    registry.register(CheckpointCollector(job, checkpoint, rates, tubes, live))
    source = StatusSource(checkpoint, rates, live, report, tubes)
    return HttpServer(address, registry, source.document)
