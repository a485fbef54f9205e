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
#: Near the end a caught-up reducer looks for more after this long, then after twice as long
#: at each further look, taking up to CAUGHT_UP_MOST jobs each time; near: what is left of
#: the population would fit in NEAR_END_JOBS results of the size of those staged.
CAUGHT_UP_LOOK_S = 0.005
CAUGHT_UP_MOST = 4
NEAR_END_JOBS = 8


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
    staged: tuple[int, int],
    items_left: int | None,
    caught_up: bool,
    looks: int,
    last_commit: float,
    commit_interval: float,
    now: float,
    most: int,
) -> tuple[float, int, int]:
    """How the reducer takes its next results: (seconds to wait first, the reserve's timeout,
    most jobs), from the (jobs, items) staged and the items of the population not yet in.

    Caught up with work staged, it commits when the caught-up interval is out, and sleeps
    till then. Near the end (what is left would fit in NEAR_END_JOBS results like those
    staged) it looks again after 5 ms, then 10, 20, ... (`looks` made so far), a few jobs at
    a time: the last partials and the end record then join the commit within a few ms, not
    at the interval's end, while a long run's reducer wakes up no more often than before."""
    jobs, items = staged
    if not (jobs and caught_up):
        return 0.0, 1, most
    wait = max(0.0, last_commit + interval(commit_interval, caught_up=True) - now)
    if items_left is None or items_left > NEAR_END_JOBS * items / jobs:
        return wait, 0, most
    return min(wait, CAUGHT_UP_LOOK_S * 2**looks), 0, min(most, CAUGHT_UP_MOST)


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
