"""`beanmill run` on a terminal: one updating line drawn from the checkpoint the reducer writes.

The roles stay as they are: their stdout and stderr go to DATA_DIR/run.log, and what is not
a progress line is written above the live line, as are run's own log events, so a warning
never lands on top of it.
"""

from __future__ import annotations

import sqlite3
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, TextIO, cast

import structlog
from tqdm import tqdm

from beanmill.checkpoint_store import Snapshot, read_snapshot
from beanmill.ending import EndConditions
from beanmill.errors import BeanmillError
from beanmill.files import open_private_append
from beanmill.live import LineFacts, estimate_text, eta_seconds, postfix, target_items
from beanmill.metrics import RateTracker

#: The roles' output while the live line is on.
LOG_FILE = "run.log"
#: Seconds between two reads of the checkpoint: the reducer commits every few seconds.
TICK_S = 0.5
WITH_TOTAL = "{desc} {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} items{postfix}"
WITHOUT_TOTAL = "{desc} {n_fmt} items{postfix}"


class LiveLine:
    """The bar, its numbers, and the roles' log relayed above it."""

    def __init__(
        self,
        job: str,
        data_dir: Path,
        checkpoint: Path,
        ending: EndConditions,
        population: int | None,
        out: IO[str] | None = None,
        err: IO[str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.job, self.checkpoint, self.ending = job, checkpoint, ending
        self.population, self.clock = population, clock
        self.out = out if out is not None else sys.stdout
        self.err = err if err is not None else sys.stderr
        self.log_path = data_dir / LOG_FILE
        #: Handed to every role as its stdout and stderr (append: a restart adds to it); 0600,
        #: as the progress file: errors in it may quote items.
        self.log = open_private_append(self.log_path)
        self.read_at = self.log.tell()
        self.rates = RateTracker()
        #: When the live line first read the checkpoint, and its items then.
        self.first: tuple[float, int] | None = None
        self.last_tick = -TICK_S
        self.closed = False
        total = None if ending.need_estimate else self._total(None)
        self.bar = tqdm(
            total=total,
            desc=f"[{job}]",
            file=self.out,
            dynamic_ncols=True,
            leave=True,
            mininterval=0,
            bar_format=WITH_TOTAL if total else WITHOUT_TOTAL,
        )
        self.logger_factory = structlog.get_config()["logger_factory"]
        above = cast("TextIO", _AboveTheLine(self.err))  # structlog calls write and flush only
        structlog.configure(logger_factory=structlog.WriteLoggerFactory(above))

    def tick(self, force: bool = False) -> None:
        """Redraw from the checkpoint, at most every TICK_S (the supervisor calls it often)."""
        now = self.clock()
        if self.closed or (not force and now - self.last_tick < TICK_S):
            return
        self.last_tick = now
        self._relay_log()
        snap = self._snapshot()
        if snap is not None:
            self._draw(snap, now)

    def close(self) -> None:
        """The last numbers, then a newline under the line, before `run` prints the result."""
        if self.closed:
            return
        self.tick(force=True)
        self.closed = True
        self.bar.close()
        self.log.close()
        structlog.configure(logger_factory=self.logger_factory)

    def _total(self, snap: Snapshot | None) -> int | None:
        total = (snap.end_items if snap is not None else None) or self.population
        if self.ending.max_items is not None:
            total = min(total or self.ending.max_items, self.ending.max_items)
        return total

    def _snapshot(self) -> Snapshot | None:
        """None until the reducer has made the checkpoint (or while it is being made)."""
        if not self.checkpoint.is_file():
            return None
        try:
            return read_snapshot(self.checkpoint)
        except (BeanmillError, sqlite3.Error):
            return None

    def _draw(self, snap: Snapshot, now: float) -> None:
        rate = self._rate(snap.items, now)
        total = self._total(snap)
        sampling = self.ending.need_estimate and not snap.complete
        # Sampling ends at the projected --until-* target: unknown until there is an estimate.
        target = target_items(self.ending, snap.items, snap.estimate, None if sampling else total)
        if target is not None and total is not None:
            target = min(target, total)
        if snap.stopped_because is not None:
            total = snap.items  # an end condition met: that was the target
        elif sampling:
            total = target  # the bar runs to the target, not the population
        facts = LineFacts(
            rate=rate,
            eta=None if snap.complete else eta_seconds(snap.items, target, rate or 0.0),
            to_target=sampling and target is not None,
            estimate=estimate_text(snap.estimate, self.ending.until_field),
            failed=snap.failed_items,
            buried=snap.errors,
        )
        self.bar.bar_format = WITH_TOTAL if total else WITHOUT_TOTAL
        self.bar.total = total
        self.bar.n = snap.items
        self.bar.set_postfix_str(postfix(facts), refresh=False)
        self.bar.refresh()

    def _rate(self, items: int, now: float) -> float | None:
        """The rate /metrics reports, once it has one; in its first seconds the mean so far."""
        rate = self.rates.add(items, now)
        if self.first is None:
            self.first = (now, items)
        elif rate is None and now > self.first[0]:
            rate = (items - self.first[1]) / (now - self.first[0])
        return rate

    def _relay_log(self) -> None:
        """The roles' new complete lines, but their plain progress lines (the bar says it)."""
        self.log.flush()
        with open(self.log_path, "rb") as fh:
            fh.seek(self.read_at)
            chunk = fh.read()
        done = chunk.rfind(b"\n") + 1
        self.read_at += done
        for raw in chunk[:done].splitlines():
            line = raw.decode(errors="replace")
            if line and not line.startswith(f"[{self.job}]"):
                tqdm.write(line, file=self.err)


class _AboveTheLine:
    """A file for structlog that writes its lines above the live line (tqdm clears it, writes,
    and draws it again)."""

    def __init__(self, err: IO[str]) -> None:
        self.err = err

    def write(self, text: str) -> int:
        tqdm.write(text, file=self.err, end="")
        return len(text)

    def flush(self) -> None:
        self.err.flush()
