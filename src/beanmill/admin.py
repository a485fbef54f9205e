"""Operator commands' logic: stats, buried jobs with their stored errors, requeue, top.

beanstalkd cannot list buried jobs (`peek-buried` shows one), so `buried` starts from the
errors the reducer stored (each names the job id it last had), checks each of those jobs
is still buried in this job's items tube (ids are reused after a restart, so the body's
batch id must match too), and adds the first buried job from `peek-buried` if no stored
error names it. The buried count from stats-tube says how many there are in all.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import greenstalk

from beanmill.checkpoint import read_errors, read_snapshot
from beanmill.errors import BeanmillError, MalformedMessage
from beanmill.queue import connect
from beanmill.wire import decode_batch

TUBE_FIELDS = (
    "current-jobs-ready",
    "current-jobs-reserved",
    "current-jobs-delayed",
    "current-jobs-buried",
    "total-jobs",
    "current-watching",
)
SERVER_FIELDS = (
    "version",
    "uptime",
    "binlog-oldest-index",
    "binlog-current-index",
    "binlog-max-size",
    "current-connections",
    "current-workers",
    "job-timeouts",
    "total-jobs",
    "cmd-delete",
)


def tubes_of(job: str) -> dict[str, str]:
    return {"items": f"{job}.items", "results": f"{job}.results", "control": f"{job}.control"}


def stats(address: str, job: str) -> dict[str, Any]:
    client = connect(address)
    try:
        server = client.stats()
        tubes: dict[str, dict[str, int]] = {}
        for role, tube in tubes_of(job).items():
            raw: dict[str, Any] = {}
            with contextlib.suppress(greenstalk.NotFoundError):  # a tube nobody used yet
                raw = dict(client.stats_tube(tube))
            tubes[role] = {k.removeprefix("current-"): int(raw.get(k, 0)) for k in TUBE_FIELDS}
        return {
            "job": job,
            "tubes": tubes,
            "server": {k: server.get(k) for k in SERVER_FIELDS},
            "at": time.time(),
        }
    finally:
        client.close()


@dataclass(frozen=True)
class BuriedJob:
    job_id: int
    batch: str
    attempts: int | None
    reason: str
    exception: str
    host: str
    traceback: str


def _batch_of(body: bytes) -> str:
    try:
        return decode_batch(body).batch
    except MalformedMessage:
        return "(malformed)"


def buried(address: str, job: str, checkpoint: Path | None) -> tuple[int, list[BuriedJob]]:
    """(how many are buried in all, those we can describe)."""
    items_tube = tubes_of(job)["items"]
    client = connect(address, use=items_tube)
    found: dict[int, BuriedJob] = {}
    try:
        try:
            total = int(client.stats_tube(items_tube)["current-jobs-buried"])
        except greenstalk.NotFoundError:
            return 0, []
        for batch, record in (read_errors(checkpoint) if checkpoint else {}).items():
            job_id = int(record.get("job_id", 0))
            try:
                st = client.stats_job(job_id)
                body = client.peek(job_id).body
            except greenstalk.NotFoundError:
                continue
            if st["state"] != "buried" or st["tube"] != items_tube:
                continue
            if record.get("reason") != "malformed" and _batch_of(body) != batch:
                continue  # a reused id: another job now
            found[job_id] = BuriedJob(
                job_id,
                batch,
                record.get("attempts"),
                str(record.get("reason", "")),
                str(record.get("exception", "")),
                str(record.get("host", "")),
                str(record.get("traceback", "")),
            )
        try:
            first = client.peek_buried()
        except greenstalk.NotFoundError:
            first = None
        if first is not None and first.id not in found:
            found[first.id] = BuriedJob(
                first.id,
                _batch_of(first.body),
                None,
                "unknown",
                "no stored error: the reducer has not seen one yet, or the job was buried by hand",
                "",
                "",
            )
        return total, sorted(found.values(), key=lambda b: b.job_id)
    finally:
        client.close()


def requeue(
    address: str, job: str, job_ids: tuple[int, ...], most: int | None
) -> tuple[int, list[str]]:
    """Kick buried jobs back to ready: (how many kicked, one problem line per id that failed)."""
    items_tube = tubes_of(job)["items"]
    client = connect(address, use=items_tube)
    problems: list[str] = []
    try:
        if job_ids:
            kicked = 0
            for job_id in job_ids:
                try:
                    st = client.stats_job(job_id)
                    if st["tube"] != items_tube or st["state"] != "buried":
                        problems.append(
                            f"job {job_id} is {st['state']} in {st['tube']}, "
                            f"not buried in {items_tube}"
                        )
                        continue
                    client.kick_job(job_id)
                    kicked += 1
                except greenstalk.NotFoundError:
                    problems.append(f"job {job_id} does not exist (see `beanmill buried`)")
            return kicked, problems
        try:
            count = int(client.stats_tube(items_tube)["current-jobs-buried"])
        except greenstalk.NotFoundError:
            count = 0
        bound = count if most is None else min(most, count)
        return (client.kick(bound) if bound else 0), problems
    finally:
        client.close()


def as_dicts(jobs: list[BuriedJob]) -> list[dict[str, Any]]:
    return [asdict(j) for j in jobs]


def progress(checkpoint: Path | None) -> str:
    if checkpoint is None:
        return ""
    try:
        snap = read_snapshot(checkpoint)
    except BeanmillError as exc:
        return f"checkpoint: {exc}"
    of = f"/{snap.end_items:,}" if snap.end_items else ""
    state = "complete" if snap.complete else "running"
    return f"checkpoint: {snap.items:,}{of} items, {snap.errors} errors, {state}"
