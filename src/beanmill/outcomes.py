"""What becomes of a batch's failed items: a retry batch to put, or items failed for good.

Both are decided by the reducer in the commit that applies the batch, and kept in the
checkpoint, so the decision is made once whatever was handed out twice.
"""

from __future__ import annotations

from dataclasses import dataclass

from beanmill.jsontypes import Item


@dataclass(frozen=True)
class Retry:
    """Failed items of an applied batch, to be put again as the batch `<parent>~`."""

    batch: str
    items: tuple[Item, ...]
    attempt: int
    delay: int


@dataclass(frozen=True)
class FailedItem:
    """An item that failed its last attempt: not counted, listed by `beanmill buried`."""

    batch: str
    item: Item
    error: str
    traceback: str
    attempts: int
    host: str
