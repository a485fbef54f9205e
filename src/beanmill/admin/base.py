"""What every operator command shares: a job's tubes, one short session, a tube's counts."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import TypedDict

import greenstalk

from beanmill.beanstalk.connection import CONNECTION_ERRORS, connect
from beanmill.errors import QueueUnavailable, SpecError
from beanmill.jobspec import TUBE_NAME


class TubeStats(TypedDict):
    name: str
    ready: int
    reserved: int
    delayed: int
    buried: int
    total: int  # jobs put since the tube was created (it vanishes when unused and empty)
    watching: int  # connections watching: consumers (items), the reducer (results)
    waiting: int  # of those, idle in a reserve
    deleted: int  # cmd-delete: with total, what top's rates come from


#: beanstalkd's own names, so what an operator reads greps against its docs.
ServerStats = TypedDict(
    "ServerStats",
    {
        "version": str,
        "uptime": int,
        "binlog-oldest-index": int,
        "binlog-current-index": int,
        "binlog-max-size": int,
        "current-connections": int,
        "job-timeouts": int,
    },
)


def tubes_of(job: str) -> tuple[str, str]:
    """The items and results tubes of a job name; the name is checked like a spec's."""
    if not TUBE_NAME.match(job):
        raise SpecError(
            f"job name {job!r} cannot name a tube: use letters, digits and .+/;$_()- only"
        )
    return f"{job}.items", f"{job}.results"


@contextlib.contextmanager
def session(address: str, use: str | None = None) -> Iterator[greenstalk.Client[bytes]]:
    """One short connection; a server that goes away mid-command is one clear error."""
    client = connect(address, use=use)
    try:
        yield client
    except CONNECTION_ERRORS as exc:
        raise QueueUnavailable(
            f"beanstalkd at {address} stopped answering ({exc!r}): check that it runs, "
            "then run the command again"
        ) from None
    finally:
        with contextlib.suppress(*CONNECTION_ERRORS):
            client.close()


def tube_stats(client: greenstalk.Client[bytes], tube: str) -> TubeStats:
    """A tube nobody has used yet (or that beanstalkd dropped as unused) reads as all zero."""
    raw: Mapping[str, object]
    try:
        raw = client.stats_tube(tube)
    except greenstalk.NotFoundError:
        raw = {}

    def count(key: str) -> int:
        value = raw.get(key, 0)
        return value if isinstance(value, int) else 0

    counts: TubeStats = {
        "name": tube,
        "ready": count("current-jobs-ready"),
        "reserved": count("current-jobs-reserved"),
        "delayed": count("current-jobs-delayed"),
        "buried": count("current-jobs-buried"),
        "total": count("total-jobs"),
        "watching": count("current-watching"),
        "waiting": count("current-waiting"),
        "deleted": count("cmd-delete"),
    }
    return counts
