"""A job whose items read real files: some are missing until the test creates them."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from beanmill import Job


class ReadFiles(Job):
    """Item i is worth i; every item with i % 100 == 7 must first read DIR/<i>.txt."""

    name = "readfiles"

    def items(self) -> range:
        return range(int(os.environ.get("FILES_ITEMS", "5000")))

    def map(self, item: str | int) -> int:
        i = int(item)
        if i % 100 == 7:
            return i + int(Path(os.environ["FILES_DIR"], f"{i}.txt").read_text())
        return i

    def reduce(self, values: Sequence[int]) -> int:  # type: ignore[override]
        return sum(values)

    def rereduce(self, partials: Sequence[int]) -> int:  # type: ignore[override]
        return sum(partials)


def special(n: int) -> list[int]:
    return [i for i in range(n) if i % 100 == 7]


def files_answer(n: int) -> int:
    """Every file holds 0, so the total is the sum of the items."""
    return n * (n - 1) // 2
