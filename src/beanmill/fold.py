"""The reducer's fold: result bodies in, one commit's worth of changes out. No I/O.

Each reserved result job is decoded, checked against the ledger (and the layout), and staged
whole or not at all. `build()` (fold_commit.py) folds the staged partials into the total; a
result that the spec's rereduce cannot fold (or whose total is not JSON) is set aside to be
buried, and the rest commit without it: nothing that decodes can stop the reducer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from beanmill.checkpoint import Snapshot
from beanmill.errors import MalformedMessage
from beanmill.fold_commit import Bury, Commit, StagedJob, build_commit
from beanmill.ids import is_retry, layout_of
from beanmill.jsontypes import JSON
from beanmill.seen import Seen
from beanmill.wire import EndRecord, ErrorRecord, Partial, Partials, decode_result

__all__ = ["Bury", "Commit", "Fold", "Ledger", "StagedJob"]


class Ledger(Protocol):
    """What the fold asks of the checkpoint: which batches are in, which retries expected."""

    def applied(self, batch_ids: Iterable[str]) -> set[str]: ...

    def pending(self, batch_ids: Iterable[str]) -> set[str]: ...


class Fold:
    """The staging window: dedup against the ledger, layout and identity checks; the commit
    itself is built in fold_commit.py."""

    def __init__(
        self, ledger: Ledger, snap: Snapshot, rereduce: Callable[[Sequence[JSON]], JSON]
    ) -> None:
        self.ledger, self.rereduce = ledger, rereduce
        self.seen = Seen()  # kept across reset(): it is what went by, not what is staged
        self.reset(snap)

    def reset(self, snap: Snapshot) -> None:
        """Start a new staging window on top of what was just committed."""
        self.snap = snap
        self.jobs: list[StagedJob] = []
        self.batches: set[str] = set()
        self.items = 0
        self.layout: str | None = None
        self.identity: str | None = None
        self.end_staged = False

    @property
    def job_count(self) -> int:
        return len(self.jobs)

    @property
    def batch_count(self) -> int:
        return len(self.batches)

    def stage(self, job_id: int, body: bytes) -> str | None:
        """Stage one result job; the reason to bury it instead, or None."""
        job = StagedJob(job_id, body)
        adopted = self.identity, self.layout  # undone if the record is refused
        try:
            record = decode_result(body)
            if isinstance(record, Partial | Partials):
                entries = (record,) if isinstance(record, Partial) else record.entries
                self._check_identity([p.job for p in entries])
                job.entries = self._new_entries(entries)
                self.seen.partials(entries, job.entries)
            elif isinstance(record, ErrorRecord):
                if not self.ledger.applied([record.batch]) and record.batch not in self.batches:
                    job.error = record
            else:
                self._check_end(record)
                job.end = record
                self.end_staged = True
        except MalformedMessage as exc:
            self.identity, self.layout = adopted
            return str(exc)
        for partial in job.entries:
            self.batches.update(partial.batches)
            self.items += partial.items
            if self.layout is None and self.snap.layout is None:
                self.layout = next(
                    (lay for b in partial.batches if (lay := layout_of(b)) is not None), None
                )
        self.jobs.append(job)
        return None

    def _check_identity(self, tags: list[str | None]) -> None:
        """Every record of one run of the job carries its tag; the first one applied is the
        checkpoint's, and a record with another belongs to another run or version."""
        known = self.identity or self.snap.identity
        for tag in tags:
            if tag is None:
                continue  # a foreign producer's batch carries none
            if known is None:
                self.identity = known = tag
            elif tag != known:
                raise MalformedMessage(
                    f"record of another run or version of job {self.snap.job} (identity "
                    f"{tag}, this checkpoint holds {known}): not mixed in; a producer restarted "
                    "from a new cursor, or `items()`/`version` changed: use a new job name or "
                    "`beanmill reset`"
                )

    def _check_end(self, end: EndRecord) -> None:
        """An `end` counts only for this job's own layout (and identity)."""
        known = self.layout or self.snap.layout
        if end.layout is None:
            raise MalformedMessage("an end record must name its batch layout")
        if known is not None and end.layout != known:
            raise MalformedMessage(
                f"end record of layout {end.layout!r}, and this checkpoint's is {known!r}: a "
                "producer with another --batch-size/--order/--seed"
            )
        self._check_identity([end.job])
        if known is None:
            self.layout = end.layout

    def _check_layout(self, batch_ids: list[str]) -> None:
        layouts = {lay for b in batch_ids if (lay := layout_of(b)) is not None}
        known = self.layout or self.snap.layout
        if layouts and (len(layouts) > 1 or (known is not None and layouts != {known})):
            raise MalformedMessage(
                f"batch layout {sorted(layouts)} differs from this checkpoint's {known!r}: the "
                "producer was restarted with another --batch-size/--order/--seed"
            )

    def _new_entries(self, partials: Sequence[Partial]) -> list[Partial]:
        """The entries not applied yet; raises, before anything is staged, for a result that
        must not be applied at all. One ledger lookup for the whole result job.

        A retry batch counts only while the checkpoint expects it: a copy that comes after it
        was applied (or one never scheduled) is a duplicate."""
        every = [b for p in partials for b in p.batches]
        self._check_layout(every)
        seen = self.ledger.applied(every) | (set(every) & self.batches)
        retries = [b for b in every if is_retry(b)]
        if retries:
            seen |= set(retries) - self.ledger.pending(retries)
        new = []
        for partial in partials:
            batches = set(partial.batches)
            overlap = batches & seen
            if overlap and overlap != batches:
                # A partial is applied whole or not at all; half of one cannot be taken apart.
                raise MalformedMessage(
                    f"partial overlaps the ledger: {len(overlap)} of its {len(batches)} "
                    f"batches are in already, {sorted(batches - overlap)[:5]} are not"
                )
            if not overlap:
                new.append(partial)
                seen |= batches  # a later entry of the same result may name them again
        return new

    def build(self) -> Commit:
        """Fold what is staged; results that cannot be folded are set aside to be buried."""
        return build_commit(self.jobs, self.snap, self.rereduce, self.layout, self.identity)
