"""Job specs used by the tests; their exact answers are known in closed form."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

from beanmill import Job


def _n() -> int:
    return int(os.environ.get("SUMS_ITEMS", "2000"))


class Squares(Job):
    """Sum of i*i over range(N): exact answer N(N-1)(2N-1)/6."""

    name = "squares"

    def items(self) -> range:
        return range(_n())

    def map(self, item: str | int) -> int:
        delay = float(os.environ.get("SUMS_MAP_DELAY", "0"))
        if delay:
            time.sleep(delay)
        return int(item) * int(item)

    def reduce(self, values: Sequence[int]) -> int:  # type: ignore[override]
        return sum(values)

    def rereduce(self, partials: Sequence[int]) -> int:  # type: ignore[override]
        return sum(partials)


def squares_answer(n: int) -> int:
    return n * (n - 1) * (2 * n - 1) // 6


class Flaky(Squares):
    """Fails on items listed in FLAKY_ITEMS (comma separated): always, or only the first time
    when FLAKY_ONCE names a directory in which to remember it."""

    name = "flaky"

    def map(self, item: str | int) -> int:
        bad = {int(x) for x in os.environ.get("FLAKY_ITEMS", "").split(",") if x}
        if int(item) in bad:
            once = os.environ.get("FLAKY_ONCE")
            if once is None:
                raise ValueError(f"item {item} is cursed")
            marker = Path(once) / f"failed-{item}"
            if not marker.exists():
                marker.write_text("")
                raise ValueError(f"item {item} fails once")
        return super().map(item)


class Slow(Squares):
    """Each item sleeps SLOW_S seconds: longer than the TTR, so only touches keep it."""

    name = "slow"

    def map(self, item: str | int) -> int:
        time.sleep(float(os.environ.get("SLOW_S", "1.5")))
        return int(item) * int(item)


class Words(Job):
    """Bare item IDs: the sum of their integer values."""

    name = "words"

    def items(self) -> list[str]:
        return []

    def map(self, item: str | int) -> int:
        return int(item)

    def reduce(self, values: Sequence[int]) -> int:  # type: ignore[override]
        return sum(values)

    def rereduce(self, partials: Sequence[int]) -> int:  # type: ignore[override]
        return sum(partials)


class Hoard(Squares):
    """A reduce that keeps every value: its partials outgrow a small max job size."""

    name = "hoard"

    def reduce(self, values: Sequence[int]) -> list[int]:  # type: ignore[override]
        return list(values)

    def rereduce(self, partials: Sequence[list[int]]) -> list[int]:  # type: ignore[override]
        return [v for p in partials for v in p]


class Hang(Squares):
    """map() of item HANG_ITEM never returns in any useful time."""

    name = "hang"

    def map(self, item: str | int) -> int:
        if int(item) == int(os.environ.get("HANG_ITEM", "-1")):
            time.sleep(3600)
        return int(item) * int(item)


class Giant(Words):
    """One item ID of 5,000 characters: no job of a small -z can hold it."""

    name = "giant"

    def items(self) -> list[str]:
        return ["7" * 5000]
