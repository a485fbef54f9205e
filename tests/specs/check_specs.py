"""Job specs for `beanmill check`: one good, and one for each mistake the check must catch."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence

from beanmill import Job


class Good(Job):
    """Sum of squares over range(1000): every check passes."""

    name = "good"

    def items(self) -> range:
        return range(1000)

    def map(self, item: str | int) -> int:
        return int(item) * int(item)

    def reduce(self, values: Sequence[int]) -> int:  # type: ignore[override]
        return sum(values)

    def rereduce(self, partials: Sequence[int]) -> int:  # type: ignore[override]
        return sum(partials)


class MaxRereduce(Good):
    """reduce sums but rereduce takes the largest partial: totals shrink silently in a run."""

    name = "max-rereduce"

    def rereduce(self, partials: Sequence[int]) -> int:  # type: ignore[override]
        return max(partials)


class FloatMean(Good):
    """A float total whose sums come out in another order in every split: equal to 1e-9."""

    name = "float-mean"

    def map(self, item: str | int) -> float:  # type: ignore[override]
        return 1 / (int(item) + 1) - 0.1


class NanMap(Good):
    """map() of item 5 is NaN, which other languages cannot read."""

    name = "nan-map"

    def map(self, item: str | int) -> float:  # type: ignore[override]
        return float("nan") if int(item) == 5 else float(item)


class SetMap(Good):
    """map() returns a set, which JSON has no word for."""

    name = "set-map"

    def map(self, item: str | int) -> set[int]:  # type: ignore[override]
        return {int(item)}


class OneBadItem(Good):
    """map() raises on item 7 only: a run buries that one item, the rest counts."""

    name = "one-bad-item"

    def map(self, item: str | int) -> int:
        if int(item) == 7:
            raise ValueError(f"item {item} is cursed")
        return super().map(item)


class AllBad(Good):
    """map() raises on every item."""

    name = "all-bad"

    def map(self, item: str | int) -> int:
        raise KeyError(item)


class BrokenItems(Good):
    """items() is a generator that fails after a few items."""

    name = "broken-items"

    def items(self) -> Iterator[int]:  # type: ignore[override]
        yield from range(3)
        raise RuntimeError("the listing service went away")


class Endless(Good):
    """items() never ends: the check must take its sample without listing them all."""

    name = "endless"

    def items(self) -> Iterator[int]:  # type: ignore[override]
        i = 0
        while True:
            yield i
            i += 1


class BrokenReduce(Good):
    """reduce() fails on the sample."""

    name = "broken-reduce"

    def reduce(self, values: Sequence[int]) -> int:  # type: ignore[override]
        return sum(values) // 0


class SqliteInSetup(Good):
    """setup() opens a sqlite3 connection that map() uses, as the README advises: sqlite3
    refuses other threads, so setup() must run in the thread that maps."""

    name = "sqlite-in-setup"

    def setup(self) -> None:
        self.db = sqlite3.connect(":memory:")

    def map(self, item: str | int) -> int:
        row = self.db.execute("SELECT ? * ?", (item, item)).fetchone()
        return int(row[0])


class SqliteInThreadSetup(Good):
    """The same connection opened in thread_setup(), per map thread: the right way."""

    name = "sqlite-in-thread-setup"

    def __init__(self) -> None:
        self.local = threading.local()
        self.setup_thread: int | None = None
        self.map_threads: set[int] = set()

    def setup(self) -> None:
        self.setup_thread = threading.get_ident()

    def thread_setup(self) -> None:
        self.local.db = sqlite3.connect(":memory:")

    def map(self, item: str | int) -> int:
        self.map_threads.add(threading.get_ident())
        row = self.local.db.execute("SELECT ? * ?", (item, item)).fetchone()
        return int(row[0])
