"""`beanmill stats` and `top`: tube counts, the server's state, and rates between samples."""

from __future__ import annotations

from typing import TypedDict

from beanmill.admin.base import ServerStats, TubeStats, session, tube_stats, tubes_of


class Tubes(TypedDict):
    items: TubeStats
    results: TubeStats


class Stats(TypedDict):
    job: str
    tubes: Tubes
    server: ServerStats


class TubeRates(TypedDict):
    put_per_s: float
    deleted_per_s: float


def stats(address: str, job: str) -> Stats:
    items, results = tubes_of(job)
    with session(address) as client:
        raw = client.stats()
        tubes = Tubes(items=tube_stats(client, items), results=tube_stats(client, results))
    server: ServerStats = {
        "version": str(raw["version"]),
        "uptime": raw["uptime"],
        "binlog-oldest-index": raw["binlog-oldest-index"],
        "binlog-current-index": raw["binlog-current-index"],
        "binlog-max-size": raw["binlog-max-size"],
        "current-connections": raw["current-connections"],
        "job-timeouts": raw["job-timeouts"],
    }
    return Stats(job=job, tubes=tubes, server=server)


def rates(before: Stats, after: Stats, seconds: float) -> dict[str, TubeRates]:
    """Jobs put and deleted per second in each tube between two samples. Counters restart
    from 0 when beanstalkd restarts or drops an unused tube: a negative delta reads as 0."""
    dt = max(seconds, 1e-9)

    def rate(a: TubeStats, b: TubeStats) -> TubeRates:
        return TubeRates(
            put_per_s=max(0, b["total"] - a["total"]) / dt,
            deleted_per_s=max(0, b["deleted"] - a["deleted"]) / dt,
        )

    return {
        "items": rate(before["tubes"]["items"], after["tubes"]["items"]),
        "results": rate(before["tubes"]["results"], after["tubes"]["results"]),
    }
