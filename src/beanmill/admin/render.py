"""What the operator commands print: tube rows, the server's state, buried jobs, top's frame."""

from __future__ import annotations

import json

from beanmill.admin import jobs as admin
from beanmill.checkpoint import Snapshot
from beanmill.progress import duration

HEADER = (
    f"{'tube':<28}{'ready':>8}{'reserved':>10}{'delayed':>9}{'buried':>8}"
    f"{'total':>10}{'watching':>10}"
)


def count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def row(t: admin.TubeStats, extra: str = "") -> str:
    return (
        f"{t['name']:<28}{t['ready']:>8}{t['reserved']:>10}{t['delayed']:>9}{t['buried']:>8}"
        f"{t['total']:>10}{t['watching']:>10}{extra}"
    )


def server_lines(s: admin.ServerStats) -> list[str]:
    oldest, current = s["binlog-oldest-index"], s["binlog-current-index"]
    binlog = f"binlog files {oldest}..{current} of {s['binlog-max-size']:,} bytes"
    if current > oldest:
        binlog += " (the oldest live job, often a buried one, pins every file after it)"
    if not current:
        binlog = "binlog off (jobs are lost when beanstalkd stops: run it with -b DIR)"
    return [
        f"beanstalkd {s['version']}, up {duration(s['uptime'])}, "
        f"{count(s['current-connections'], 'connection')}, "
        f"{count(s['job-timeouts'], 'TTR timeout')}",
        binlog,
    ]


def stats_lines(data: admin.Stats) -> list[str]:
    tubes = data["tubes"]
    return [HEADER, row(tubes["items"]), row(tubes["results"]), *server_lines(data["server"])]


def progress_line(snap: Snapshot, items_per_s: float | None) -> str:
    done = f"{snap.items:,} items"
    if snap.end_items:
        done = f"{snap.items:,}/{snap.end_items:,} items ({100 * snap.items / snap.end_items:.1f}%)"
    rate = "" if items_per_s is None else f", {items_per_s:,.0f} items/s"
    state = "complete" if snap.complete else "running"
    return (
        f"checkpoint: {done} in {snap.batches:,} batches{rate}, "
        f"{count(snap.errors, 'stored error')}, {state}"
    )


def frame(data: admin.Stats, rates: dict[str, admin.TubeRates] | None) -> list[str]:
    def rate(role: str) -> str:
        if rates is None:
            return f"{'-':>9}{'-':>9}"
        r = rates[role]
        return f"{r['put_per_s']:>9,.1f}{r['deleted_per_s']:>9,.1f}"

    items, results = data["tubes"]["items"], data["tubes"]["results"]
    return [
        f"{HEADER}{'put/s':>9}{'del/s':>9}",
        row(items, rate("items")),
        row(results, rate("results")),
        f"workers: {count(items['watching'], 'consumer')} ({items['waiting']} idle), "
        f"{count(results['watching'], 'reducer')}; {items['buried']} buried"
        + (" (see `beanmill buried`)" if items["buried"] else ""),
        *server_lines(data["server"]),
    ]


def buried_lines(report: admin.BuriedReport, verbose: bool) -> list[str]:
    lines = [f"{report.tube}: {report.buried} buried, {report.described} described"]
    for j in report.jobs:
        head = f"job {j.job_id}  batch {j.batch}"
        if j.reason != "unknown":
            head += f"  {j.reason} after {count(j.attempts or 0, 'attempt')} on {j.host or '?'}"
        lines.append(head)
        lines.append("    " + j.exception.replace("\n", "\n    "))
        if verbose and j.traceback:
            lines.append("    | " + j.traceback.rstrip().replace("\n", "\n    | "))
    if report.failed_items:
        lines.append(f"{len(report.failed_items)} items failed their last attempt (not counted):")
    for f in report.failed_items:
        lines.append(
            f"item {json.dumps(f.item)}  batch {f.batch}  failed after "
            f"{count(f.attempts or 0, 'attempt')} on {f.host or '?'}"
        )
        lines.append("    " + f.exception.replace("\n", "\n    "))
        if verbose and f.traceback:
            lines.append("    | " + f.traceback.rstrip().replace("\n", "\n    | "))
    if len(report.jobs) < report.described:
        lines.append(f"(showing {len(report.jobs)} of {report.described}: raise --limit)")
    if not report.checkpoint:
        lines.append("only the oldest is shown: pass --checkpoint to see every stored error")
    elif report.buried > report.described:
        lines.append(
            f"{report.buried - report.described} more have no stored error yet: beanstalkd "
            "shows only the oldest; the reducer stores the rest as it reads them"
        )
    if report.stale_errors:
        lines.append(
            f"{count(report.stale_errors, 'stored error')} name jobs no longer buried "
            "(requeued and not done yet, or deleted)"
        )
    if report.results_buried:
        lines.append(
            f"{report.tube.removesuffix('.items')}.results: {report.results_buried} buried "
            "results the reducer could not read (see its result_malformed_buried events)"
        )
    return lines
