"""Slow items are big items: when a map's time grows with its value, the batches done at any
moment lean towards the quick ones. A simulation of consumers taking batches in the random
order shows that at the default batch size the lean is negligible next to the interval.

    python tests/unit/test_slow_items.py     prints the numbers in docs/sampling.md
"""

from __future__ import annotations

import heapq

import numpy as np

from beanmill.source import DEFAULT_BATCH_SIZE


def done_by(rng: np.random.Generator, batch: int, workers: int, batches: int) -> tuple[float, ...]:
    """One run: lognormal(0, 1.5) values, map time = value. Returns (mean of the batches done
    when half of them are done, mean of the same number of batches as a prefix of the order,
    standard error of that mean)."""
    x = rng.lognormal(0, 1.5, batch * batches).reshape(batches, batch)
    cost = x.sum(axis=1)  # the batch's time: its values' sum
    free = [0.0] * workers
    finish = np.empty(batches)
    for j in range(batches):  # the next batch in the order goes to the first free consumer
        start = heapq.heappop(free)
        finish[j] = start + cost[j]
        heapq.heappush(free, finish[j])
    at = np.sort(finish)[batches // 2 - 1]  # the moment half of the batches are done
    done = finish <= at
    k = int(done.sum())
    sample = x[done].ravel()
    return float(sample.mean()), float(x[:k].mean()), float(sample.std(ddof=1) / np.sqrt(k * batch))


def lean(batch: int, workers: int = 8, batches: int = 200, reps: int = 400) -> float:
    """The mean difference (done minus prefix), in standard errors of the estimate."""
    rng = np.random.default_rng(11)
    runs = [done_by(rng, batch, workers, batches) for _ in range(reps)]
    return float(np.mean([(d - p) / se for d, p, se in runs]))


def test_at_the_default_batch_size_slow_big_items_move_the_estimate_negligibly() -> None:
    """A lean of 0.15 standard errors turns a 95% interval into a 94.8% one."""
    assert abs(lean(DEFAULT_BATCH_SIZE)) < 0.15


def test_with_one_item_a_batch_the_lean_towards_quick_items_shows() -> None:
    """The simulation can see the effect: with single-item batches it is large."""
    assert lean(1, batches=400) < -0.2


if __name__ == "__main__":
    for b in (1, 10, 100, DEFAULT_BATCH_SIZE):
        print(f"batch {b}: {lean(b, batches=400 if b == 1 else 200):+.3f} standard errors")
