"""Prometheus metrics: a private registry per process, every series labelled with the job.

The consumer counts what it maps once per batch; everything else is read at scrape time (the
checkpoint, tube stats on a connection of the scraping thread's own), so the reducer's loop
pays nothing for being watched.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import greenstalk
import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from beanmill.beanstalk.connection import connect
from beanmill.checkpoint_store import Snapshot, read_snapshot
from beanmill.ending import half_width
from beanmill.errors import BeanmillError
from beanmill.seen import Seen
from beanmill.wire import Partial

log = structlog.get_logger()

#: Seconds to map one batch: from a fast CPU map of a small batch to a slow I/O one.
MAP_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0, 60.0, 300.0)
#: The rate is items applied over this many seconds of recent samples.
RATE_WINDOW_S = 30.0
#: ... and needs samples at least this far apart to say anything.
RATE_MIN_SPAN_S = 2.0
TUBE_STATES = ("ready", "reserved", "delayed", "buried")


def new_registry() -> CollectorRegistry:
    """A registry of this process's own: no default process/GC collectors, no globals."""
    return CollectorRegistry(auto_describe=True)


class ConsumerMetrics:
    """What one consumer process does: items mapped, failed, retried, time per batch."""

    def __init__(self, job: str, registry: CollectorRegistry) -> None:
        self.maps = Counter(
            "beanmill_maps", "Items mapped by this consumer", ["job"], registry=registry
        ).labels(job)
        self.failed = Counter(
            "beanmill_consumer_items_failed",
            "Items whose map() failed at their last attempt",
            ["job"],
            registry=registry,
        ).labels(job)
        self.retries = Counter(
            "beanmill_retries",
            "Items whose map() failed and that will be tried again",
            ["job"],
            registry=registry,
        ).labels(job)
        self.map_seconds = Histogram(
            "beanmill_batch_map_seconds",
            "Seconds to map one reserved job (a batch, or a group of small ones)",
            ["job"],
            buckets=MAP_BUCKETS,
            registry=registry,
        ).labels(job)
        self.paused = Gauge(
            "beanmill_consumer_paused",
            "1 while the consumer waits before taking work (reason: storm, results_backlog)",
            ["job", "reason"],
            registry=registry,
        )
        self.disk_full = Gauge(
            "beanmill_beanstalkd_disk_full",
            "1 while beanstalkd refuses writes for want of binlog disk space",
            ["job"],
            registry=registry,
        ).labels(job)
        self.job = job

    def mapped(self, partials: Sequence[Partial], seconds: float) -> None:
        """One job's items mapped: once per job, never per item, to keep the map loop lean."""
        good = sum(p.items for p in partials)
        failed_final = sum(p.failed_items for p in partials if p.final)
        retried = sum(p.failed_items for p in partials if not p.final)
        self.maps.inc(good + failed_final + retried)
        if failed_final:
            self.failed.inc(failed_final)
        if retried:
            self.retries.inc(retried)
        self.map_seconds.observe(seconds)

    def watch_pause(self, reason_now: Callable[[], str | None]) -> None:
        """Read, at scrape time, why the consumer waits (None: it does not)."""
        for reason in ("storm", "results_backlog"):
            self.paused.labels(self.job, reason).set_function(
                lambda r=reason: float(reason_now() == r)  # type: ignore[misc]
            )

    def watch_disk(self, waiting: Callable[[], bool]) -> None:
        self.disk_full.set_function(lambda: float(waiting()))


@dataclass
class RateTracker:
    """Items per second over the last RATE_WINDOW_S of samples, taken whenever someone looks
    (a scrape, a dashboard poll); thread-safe, since requests come on threads of their own."""

    window_s: float = RATE_WINDOW_S
    samples: deque[tuple[float, int]] = field(default_factory=deque)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, items: int, now: float | None = None) -> float | None:
        now = time.monotonic() if now is None else now
        with self.lock:
            if not self.samples or now > self.samples[-1][0]:
                self.samples.append((now, items))
            while len(self.samples) > 2 and now - self.samples[1][0] >= self.window_s:
                self.samples.popleft()
            (t0, n0), (t1, n1) = self.samples[0], self.samples[-1]
            if t1 - t0 < RATE_MIN_SPAN_S:
                return None
            return max(0.0, (n1 - n0) / (t1 - t0))


class TubeStats:
    """stats-tube on a connection of its own (greenstalk is not thread-safe: never the role's),
    made at the first scrape and again after a failure; one scrape at a time."""

    def __init__(self, address: str, tubes: Sequence[str]) -> None:
        self.address, self.tubes = address, tuple(tubes)
        self.client: greenstalk.Client[bytes] | None = None
        self.lock = threading.Lock()

    def counts(self) -> dict[str, dict[str, int]] | None:
        """Per tube, jobs per state and connections watching it; None when beanstalkd cannot
        be asked right now."""
        with self.lock:
            try:
                if self.client is None:
                    self.client = connect(self.address)
                return {tube: self._tube(self.client, tube) for tube in self.tubes}
            except (BeanmillError, OSError, greenstalk.Error) as exc:
                log.debug("tube_stats_failed", error=str(exc))
                self.close_locked()
                return None

    @staticmethod
    def _tube(client: greenstalk.Client[bytes], tube: str) -> dict[str, int]:
        try:
            stats: Mapping[str, object] = client.stats_tube(tube)
        except greenstalk.NotFoundError:  # no job was ever put there, or none is left
            return dict.fromkeys((*TUBE_STATES, "watching"), 0)
        counts = {s: int(str(stats.get(f"current-jobs-{s}", 0))) for s in TUBE_STATES}
        counts["watching"] = int(str(stats.get("current-watching", 0)))
        return counts

    def close_locked(self) -> None:
        if self.client is not None:
            with contextlib.suppress(OSError):
                self.client.close()
            self.client = None

    def close(self) -> None:
        with self.lock:
            self.close_locked()


@dataclass
class Live:
    """What only a running reducer knows, for its /metrics and /api/status."""

    seen: Seen
    population: int | None = None
    disk_full: Callable[[], bool] = lambda: False


class CheckpointCollector(Collector):
    """The job's series, read from the checkpoint (and beanstalkd) when Prometheus scrapes."""

    def __init__(
        self,
        job: str,
        checkpoint: Path,
        rates: RateTracker,
        tubes: TubeStats | None = None,
        live: Live | None = None,
    ) -> None:
        self.job, self.checkpoint, self.rates = job, checkpoint, rates
        self.tubes, self.live = tubes, live

    def collect(self) -> Iterator[Metric]:
        try:
            snap = read_snapshot(self.checkpoint)
        except BeanmillError as exc:
            log.debug("checkpoint_unreadable_at_scrape", error=str(exc))
            snap = None
        if snap is not None:
            yield from self._checkpoint(snap)
        if self.tubes is not None and (counts := self.tubes.counts()) is not None:
            yield from self._tubes(counts)
        if self.live is not None:
            yield self._counter(
                "beanmill_duplicates_dropped",
                "Partials already in the ledger, dropped by this reducer since it started",
                self.live.seen.duplicates,
            )
            yield self._gauge(
                "beanmill_beanstalkd_disk_full",
                "1 while beanstalkd refuses writes for want of binlog disk space",
                float(self.live.disk_full()),
            )

    def _checkpoint(self, snap: Snapshot) -> Iterator[Metric]:
        yield self._counter("beanmill_items_counted", "Items counted in the total", snap.items)
        yield self._counter("beanmill_batches_applied", "Batches in the ledger", snap.batches)
        yield self._gauge("beanmill_items_failed", "Items failed for good", snap.failed_items)
        total = snap.end_items or (self.live.population if self.live else None)
        if total is not None:
            yield self._gauge("beanmill_items_total", "Items in the job", total)
        yield self._gauge("beanmill_complete", "1 once the job has finished", snap.complete)
        yield self._gauge(
            "beanmill_seconds_since_commit",
            "Seconds since the checkpoint's last commit",
            max(0.0, time.time() - snap.updated_at),
        )
        rate = self.rates.add(snap.items)
        if rate is not None:
            yield self._gauge("beanmill_items_per_second", "Recent items counted per second", rate)
        if snap.estimate is not None:
            mean = snap.estimate.get("mean")
            if isinstance(mean, int | float):
                yield self._gauge("beanmill_estimate", "The sampled estimate (mean)", mean)
            half = half_width(snap.estimate)
            if half is not None:
                yield self._gauge(
                    "beanmill_estimate_half_width", "Half-width of its 95% interval", half
                )

    def _tubes(self, counts: dict[str, dict[str, int]]) -> Iterator[Metric]:
        jobs = GaugeMetricFamily(
            "beanmill_tube_jobs", "Jobs in each tube by state", labels=["job", "tube", "state"]
        )
        for tube, states in counts.items():
            for state in TUBE_STATES:
                jobs.add_metric([self.job, tube, state], states[state])
        yield jobs
        buried = sum(states["buried"] for states in counts.values())
        yield self._gauge("beanmill_buried_jobs", "Buried jobs in the job's tubes", buried)
        watching = counts[self.tubes.tubes[0]]["watching"] if self.tubes else 0
        yield self._gauge(
            "beanmill_consumers", "Connections watching the items tube (consumers)", watching
        )

    def _gauge(self, name: str, doc: str, value: float) -> GaugeMetricFamily:
        family = GaugeMetricFamily(name, doc, labels=["job"])
        family.add_metric([self.job], float(value))
        return family

    def _counter(self, name: str, doc: str, value: float) -> CounterMetricFamily:
        family = CounterMetricFamily(name, doc, labels=["job"])
        family.add_metric([self.job], float(value))
        return family
