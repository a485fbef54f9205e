"""Progress lines: what an operator reads in a terminal, `tail -f` or journald."""

from __future__ import annotations

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
