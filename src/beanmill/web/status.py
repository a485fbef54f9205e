"""The dashboard's document: `status --json` read from the checkpoint, plus what the page
shows besides (state, rate, ETA, the convergence history, failed items, consumers)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from beanmill.beanstalk.binlog_flag import waiting_at
from beanmill.checkpoint_ops import read_failed, read_history
from beanmill.checkpoint_store import Snapshot, read_snapshot
from beanmill.ending import half_width
from beanmill.jobspec import Progress
from beanmill.jsontypes import JSON
from beanmill.metrics import Live, RateTracker, TubeStats
from beanmill.rebuild import rebuild_due

#: The page lists this many failed items (`beanmill buried` lists them all).
MAX_FAILED = 100
#: The convergence chart gets at most this many points (thinned evenly, last one kept).
MAX_HISTORY = 400
#: A host not heard from for this long is no longer listed as a consumer.
CONSUMER_RECENT_S = 120.0
MAX_RESULT_CHARS = 2000

Report = Callable[[JSON, Progress], str]


def state_of(snap: Snapshot, disk_full: bool = False) -> str:
    """running, sampling, finished, finished with failures, or waiting on a full disk."""
    if snap.complete:
        return "finished with failures" if snap.failed_items else "finished"
    if disk_full:
        return "waiting on a full disk"
    return "sampling" if snap.estimate is not None else "running"


@dataclass
class StatusSource:
    """Builds the document for one checkpoint; `live` and `report` when a reducer serves it."""

    checkpoint: Path
    rates: RateTracker
    live: Live | None = None
    report: Report | None = None
    tubes: TubeStats | None = None

    def document(self) -> dict[str, JSON]:
        snap = read_snapshot(self.checkpoint)
        doc = snap.as_json()
        now = time.time()
        rate = self.rates.add(snap.items)
        total_items = snap.end_items or (self.live.population if self.live else None)
        eta = None
        if rate and total_items and not snap.complete and snap.estimate is None:
            eta = max(0.0, (total_items - snap.items) / rate)
        doc.update(
            state=state_of(snap, self.live is not None and self.live.disk_full()),
            total_items=total_items,
            rate=rate,
            eta_s=eta,
            half_width=half_width(snap.estimate) if snap.estimate else None,
            seconds_since_commit=max(0.0, now - snap.updated_at),
            report=self._report(snap, total_items, rate),
            history=_history(self.checkpoint) if snap.estimate is not None else [],
            failed=_failed(self.checkpoint),
            consumers=self._consumers(now),
            rebuild_due=rebuild_due(self.checkpoint),
            binlog_full=self._binlog_full(snap.job),
            **self._queue(),
        )
        return doc

    def _binlog_full(self, job: str) -> list[JSON] | None:
        """The roles waiting on beanstalkd's full binlog disk, as `status --json` has them."""
        waiting = waiting_at(self.tubes.address, job) if self.tubes is not None else None
        return None if waiting is None else [dict(w.as_json()) for w in waiting]

    def _queue(self) -> dict[str, JSON]:
        """Tube counts and consumers connected, when beanstalkd is known and answers."""
        counts = self.tubes.counts() if self.tubes is not None else None
        if counts is None or self.tubes is None:
            return {"tubes": None, "consumers_watching": None}
        tubes: dict[str, JSON] = {tube: dict(states) for tube, states in counts.items()}
        return {"tubes": tubes, "consumers_watching": counts[self.tubes.tubes[0]]["watching"]}

    def _report(self, snap: Snapshot, total_items: int | None, rate: float | None) -> str:
        text = json.dumps(snap.total)
        if self.report is not None:
            progress = Progress(
                items=snap.items,
                batches=snap.batches,
                total_items=total_items,
                total_batches=snap.end_batches,
                errors=snap.errors,
                elapsed=max(0.0, snap.updated_at - snap.created_at),
                items_per_s=rate or 0.0,
            )
            try:
                text = self.report(snap.total, progress)
            except Exception as exc:  # the spec's report(): show the total instead
                text = f"{text} (report() failed: {type(exc).__name__}: {exc})"
        return text[:MAX_RESULT_CHARS]

    def _consumers(self, now: float) -> list[JSON] | None:
        """Hosts whose partials came in recently; None when no reducer runs here to know."""
        if self.live is None:
            return None
        hosts = list(self.live.seen.hosts.items())  # a copy: the reducer adds while we read
        return [
            {"host": host, "items": s.items, "rate": s.rate, "last_seen_s": now - s.last_seen}
            for host, s in sorted(hosts)
            if now - s.last_seen <= CONSUMER_RECENT_S
        ]


def _history(checkpoint: Path) -> list[JSON]:
    """[items, mean, low, high] per commit, thinned for the chart."""
    points: list[JSON] = []
    for items, estimate in read_history(checkpoint):
        ci = estimate.get("ci95")
        mean = estimate.get("mean")
        if isinstance(ci, list) and len(ci) == 2 and isinstance(mean, int | float):
            points.append([items, mean, ci[0], ci[1]])
    if len(points) > MAX_HISTORY:
        step = len(points) / MAX_HISTORY
        points = [points[int(i * step)] for i in range(MAX_HISTORY - 1)] + [points[-1]]
    return points


def _failed(checkpoint: Path) -> list[JSON]:
    return [
        {"item": f.item, "batch": f.batch, "error": f.error, "attempts": f.attempts, "host": f.host}
        for f in read_failed(checkpoint)[:MAX_FAILED]
    ]
