"""The reducer's progress reporting: a line on stdout (and to systemd) for people, and a JSON
line in --progress-file for programs, every --progress-interval seconds."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import TextIO

from beanmill.checkpoint import Snapshot
from beanmill.ending import StopRule, half_width
from beanmill.files import open_private_append
from beanmill.jobspec import Progress, Spec
from beanmill.notify import Notifier
from beanmill.progress import progress_line


class ProgressReporter:
    """What the reducer says about a snapshot, and the rate since this reducer started."""

    def __init__(
        self,
        spec: Spec,
        out: TextIO,
        notifier: Notifier,
        *,
        every_s: float,
        progress_file: Path | None,
        population: int | None,
        start: Snapshot,
        stop_rule: StopRule,
    ) -> None:
        self.spec, self.out, self.notifier = spec, out, notifier
        self.every_s, self.progress_file, self.population = every_s, progress_file, population
        self.started = time.monotonic()
        self.items_at_start = start.items
        self.last_half: float | None = None
        self.stop_rule = stop_rule  # its note of a held-back stop goes on the next line
        self.last_line = time.monotonic()

    def due(self) -> bool:
        """A line is due: --progress-interval has passed since the last one."""
        return time.monotonic() - self.last_line >= self.every_s

    def progress(self, snap: Snapshot) -> Progress:
        elapsed = time.monotonic() - self.started
        done = snap.items - self.items_at_start
        return Progress(
            items=snap.items,
            batches=snap.batches,
            total_items=snap.end_items or self.population,
            total_batches=snap.end_batches,
            errors=snap.errors,
            elapsed=elapsed,
            items_per_s=done / elapsed if elapsed > 0 else 0.0,
        )

    def print(self, snap: Snapshot, state: str = "") -> None:
        """A line on stdout for people (and journald), and a JSON line for programs."""
        p = self.progress(snap)
        report = self.spec.report(snap.total, p) + self.stop_rule.take_note()
        half = half_width(snap.estimate) if snap.estimate else None
        if half is not None and self.last_half is not None and self.last_half > 0:
            report += f" (interval x{half / self.last_half:.2f} since last line)"
        self.last_half = half if half is not None else self.last_half
        line = progress_line(self.spec.name, p, report, state)
        print(line, file=self.out, flush=True)
        self.notifier.status(line)
        if self.progress_file is not None:
            record = {
                "at": time.time(),
                "state": state or "running",
                **asdict(p),
                "estimate": snap.estimate,
                "report": report,
            }
            with open_private_append(self.progress_file) as fh:
                fh.write(json.dumps(record) + "\n")
        self.last_line = time.monotonic()
