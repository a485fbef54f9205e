"""Batches of contiguous integers on the wire as `"range":[first,stop]`, not as a list.

`range(10**9)` is the commonest items(): its batches are runs of integers, which as a JSON
list cost the producer an encode and every consumer a decode of each item. A range costs
two numbers. It is a versioned extension (docs/wire-format.md): such a batch says `"v":2`,
so a reader that knows only version 1 refuses it as an unknown version instead of
misreading it; every other record stays version 1.
"""

from __future__ import annotations

from typing import Any

from beanmill.errors import MalformedMessage
from beanmill.jsontypes import Item

RANGE_VERSION = 2
#: A range names at most this many items: a forged [0, 2**53] must not fill a worker's memory.
MAX_RANGE_ITEMS = 1_000_000
#: Integers beyond this lose precision in other languages' JSON (doubles).
MAX_INT = 2**53


def contiguous(items: tuple[Item, ...]) -> tuple[int, int] | None:
    """(first, stop) if the items are the integers first, first + 1, ..., stop - 1."""
    n = len(items)
    if not 1 < n <= MAX_RANGE_ITEMS or type(items[0]) is not int:
        return None
    first = items[0]
    # tuple equality runs at C speed; True == 1, so the types are checked too (no bools)
    if items != tuple(range(first, first + n)) or set(map(type, items)) != {int}:
        return None
    if not (first >= -MAX_INT and first + n <= MAX_INT):
        return None
    return first, first + n


def range_items(obj: dict[str, Any]) -> tuple[Item, ...]:
    """A version-2 batch's `"range":[first,stop]`: integers within 2**53, 1 to
    MAX_RANGE_ITEMS of them. With `items` present as well the body is malformed."""
    span = obj.get("range")
    if "items" in obj or not isinstance(span, list) or len(span) != 2:
        raise MalformedMessage("a version 2 batch holds 'range': [first, stop] and no 'items'")
    if not all(type(x) is int and -MAX_INT <= x <= MAX_INT for x in span):
        raise MalformedMessage("'range' bounds must be integers within 2**53")
    first, stop = span
    if not 0 < stop - first <= MAX_RANGE_ITEMS:
        raise MalformedMessage(f"'range' must hold 1 to {MAX_RANGE_ITEMS:,} items")
    return tuple(range(first, stop))
