"""`beanmill reset`: clear a job from beanstalkd (and its data dir) to use its name again."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import greenstalk

from beanmill.admin.base import session, tubes_of
from beanmill.beanstalk.lease import lease_tube
from beanmill.errors import BeanmillError
from beanmill.rebuild import rebuild_tube


@dataclass(frozen=True)
class ResetResult:
    deleted: dict[str, int]  # jobs deleted per tube
    removed: tuple[str, ...]  # files of the data dir removed


def job_tubes(job: str) -> tuple[str, ...]:
    """Every tube a job uses: items, results, control, rebuild, and its roles' leases."""
    items, results = tubes_of(job)
    leases = [lease_tube(job, role) for role in ("reducer", "producer")]
    holders = (f"{t}.holder" for t in leases)
    return (items, results, f"{job}.control", rebuild_tube(job), *leases, *holders)


def reset(address: str, job: str, data_dir: Path | None = None) -> ResetResult:
    """Clear a job from beanstalkd (and its data dir) so that its name can be used again.

    Refused while any of its jobs is reserved: a role still runs, and would put back what
    was cleared. Then every ready, delayed and buried job of its tubes is deleted."""
    tubes = job_tubes(job)
    deleted: dict[str, int] = {}
    with session(address) as client:
        busy = {t: n for t in tubes if (n := _reserved(client, t))}
        if busy:
            where = ", ".join(f"{t} ({n})" for t, n in busy.items())
            raise BeanmillError(
                f"job {job} still has reserved jobs in {where}: stop its producer, consumers "
                "and reducer first, then reset"
            )
        for tube in tubes:
            deleted[tube] = _delete_all(client, tube)
    removed: list[str] = []
    if data_dir is not None:
        for name in DATA_DIR_STATE:
            for path in data_dir.glob(name):
                path.unlink()
                removed.append(path.name)
    return ResetResult(deleted, tuple(removed))


#: What a run's data dir keeps of a job's progress (the binlog stays: it is beanstalkd's).
DATA_DIR_STATE = ("checkpoint.sqlite*", "cursor.json", "progress.jsonl")


def _reserved(client: greenstalk.Client[bytes], tube: str) -> int:
    try:
        return int(client.stats_tube(tube)["current-jobs-reserved"])
    except greenstalk.NotFoundError:
        return 0


def _delete_all(client: greenstalk.Client[bytes], tube: str) -> int:
    client.use(tube)
    deleted = 0
    for peek in (client.peek_ready, client.peek_delayed, client.peek_buried):
        while True:
            try:
                job = peek()
            except greenstalk.NotFoundError:
                break
            with contextlib.suppress(greenstalk.NotFoundError):
                client.delete(job.id)
                deleted += 1
    return deleted
