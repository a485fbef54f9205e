"""Progress lines: what an operator reads in a terminal, `tail -f` or journald."""

from __future__ import annotations

import json

from beanmill.checkpoint_store import Snapshot
from beanmill.jobspec import Progress


def duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def progress_line(job: str, p: Progress, report: str, state: str = "") -> str:
    """One line, fixed field order, so it greps and tails well."""
    parts = [f"[{job}] {state}".rstrip()]
    if p.total_items:
        parts.append(f"{p.items:,}/{p.total_items:,} items ({100 * (p.fraction or 0):.1f}%)")
    else:
        parts.append(f"{p.items:,} items")
    parts.append(f"{p.items_per_s:,.0f} items/s")
    if p.total_items and p.items_per_s > 0 and p.items < p.total_items and not state:
        parts.append(f"ETA {duration((p.total_items - p.items) / p.items_per_s)}")
    if p.errors:
        parts.append(f"{p.errors} buried (see `beanmill buried`)")
    parts.append(f"result: {report}")
    return " | ".join(parts)


def status_lines(snap: Snapshot) -> list[str]:
    """`beanmill status`, for people: one fact a line."""
    of = f"/{snap.end_items:,}" if snap.end_items is not None else ""
    lines = [
        f"job:      {snap.job}",
        f"items:    {snap.items:,}{of} in {snap.batches:,} batches",
        f"complete: {'yes' if snap.complete else 'no'}",
        f"errors:   {snap.errors}",
    ]
    if snap.failed_items:
        lines.append(f"failed:   {snap.failed_items:,} items (see `beanmill buried`)")
    if snap.pending:
        lines.append(f"retries:  {snap.pending:,} batches of failed items to try again")
    if snap.foreign_batches:
        lines.append(f"foreign:  {snap.foreign_batches:,} batches of no layout (counted)")
    if snap.stopped_because:
        lines.append(f"stopped:  {snap.stopped_because}")
    estimate = snap.estimate or {}
    fields = {"": estimate} if "ci95" in estimate else estimate  # Fields: one per field
    for name, one in fields.items():
        if not isinstance(one, dict):
            continue
        ci, value = one.get("ci95"), one.get("value", one.get("mean"))
        if isinstance(ci, list) and len(ci) == 2 and isinstance(value, int | float):
            label = f"estimate{' ' + name if name else ''}:"
            lines.append(
                f"{label:<9} {value:.6g}, 95% interval [{ci[0]:.6g}, {ci[1]:.6g}] "
                f"(n={one.get('n', '?')})"
            )
    lines.append(f"total:    {json.dumps(snap.total)}")
    return lines
