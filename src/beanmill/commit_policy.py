"""When the reducer commits: a pure decision from what is staged, the checkpoint and the clock."""

from __future__ import annotations

from dataclasses import dataclass

from beanmill.checkpoint import Snapshot

MAX_STAGED_JOBS = 5000
EARLY_COMMIT_ITEMS = 1000
#: Caught up (the results tube ran dry) with work staged, the reducer commits after this
#: share of --commit-interval instead of all of it: status and the job's end come promptly,
#: while a trickle of results still costs at most 1/(share x interval) commits per second.
CAUGHT_UP_SHARE = 0.05
#: A caught-up reducer with work staged looks for more after this long, then after twice as
#: long at each further look.
CAUGHT_UP_LOOK_S = 0.005


@dataclass(frozen=True)
class Staging:
    """The size of what the reducer holds uncommitted."""

    jobs: int
    items: int
    batches: int
    end: bool


def interval(commit_interval: float, caught_up: bool) -> float:
    return (CAUGHT_UP_SHARE if caught_up else 1.0) * commit_interval


def next_reserve(
    staged_jobs: int,
    caught_up: bool,
    looks: int,
    last_commit: float,
    commit_interval: float,
    now: float,
    most: int,
) -> tuple[float, int, int]:
    """How the reducer takes its next results: (seconds to wait first, the reserve's timeout,
    most jobs). Caught up with work staged, it commits when the caught-up interval is out;
    until then it looks for more after 5 ms, then 10, 20, ... (`looks` made so far). What
    comes meanwhile (above all the end record, which makes the commit due at once) joins
    that commit within a few ms, and a trickle of results costs a few looks per interval."""
    if not (staged_jobs and caught_up):
        return 0.0, 1, most
    left = last_commit + interval(commit_interval, caught_up=True) - now
    return min(max(0.0, left), CAUGHT_UP_LOOK_S * 2**looks), 0, most


def commit_due(
    staged: Staging,
    snap: Snapshot,
    since_commit: float,
    commit_interval: float,
    caught_up: bool,
) -> bool:
    """True when what is staged should be committed now."""
    if not staged.jobs:
        return False
    if staged.jobs >= MAX_STAGED_JOBS or staged.end:
        return True
    if staged.items >= max(EARLY_COMMIT_ITEMS, snap.items):
        return True  # doubling: early estimates (and their plot) come at log-spaced sizes
    if snap.end_batches is not None and snap.producer_batches + staged.batches >= snap.end_batches:
        return True
    return since_commit >= interval(commit_interval, caught_up)
