"""The exact reducers: sums, counts, extremes, a histogram and a top-k."""

from __future__ import annotations

import heapq
import json
import math
from collections import Counter as _Tally
from collections.abc import Sequence

from beanmill.jsontypes import JSON
from beanmill.reducers._common import _dict, _fmt, _int, _num, _present

__all__ = ["Count", "Counter", "Max", "Min", "Sum", "TopK"]


class Sum:
    """Integers stay exact; floats are added with fsum so chunking moves the result least."""

    def reduce(self, values: Sequence[JSON]) -> JSON:
        nums = [_num(v, "Sum") for v in values]
        return sum(nums) if all(isinstance(n, int) for n in nums) else math.fsum(nums)

    def rereduce(self, partials: Sequence[JSON]) -> JSON:
        return self.reduce(_present(partials))

    def describe(self, total: JSON) -> str:
        return f"sum {_fmt(_num(total or 0, 'Sum'))}"


class Count:
    """Counts values, whatever they are; the partial is an int."""

    def reduce(self, values: Sequence[JSON]) -> JSON:
        return len(values)

    def rereduce(self, partials: Sequence[JSON]) -> JSON:
        return sum(_int(p, "Count") for p in _present(partials))

    def describe(self, total: JSON) -> str:
        return f"count {_int(total or 0, 'Count'):,}"


class _Extreme:
    """None stands for "no values yet", so it is the identity."""

    label, largest = "", False

    def reduce(self, values: Sequence[JSON]) -> JSON:
        nums = [_num(v, self.label) for v in values]
        if not nums:
            return None
        return max(nums) if self.largest else min(nums)

    def rereduce(self, partials: Sequence[JSON]) -> JSON:
        return self.reduce(_present(partials))

    def describe(self, total: JSON) -> str:
        if total is None:
            return f"{self.label}: no values yet"
        return f"{self.label} {_fmt(_num(total, self.label))}"


class Min(_Extreme):
    """The smallest number; None until there is one."""

    label, largest = "min", False


class Max(_Extreme):
    """The largest number; None until there is one."""

    label, largest = "max", True


class Counter:
    """A histogram keyed by str(value), since JSON object keys must be strings."""

    def __init__(self, top: int = 10) -> None:
        if top < 0:
            raise ValueError("Counter(top=...) must be >= 0")
        self.top = top

    def reduce(self, values: Sequence[JSON]) -> JSON:
        counts: dict[str, JSON] = dict(_Tally(v if isinstance(v, str) else str(v) for v in values))
        return counts

    def rereduce(self, partials: Sequence[JSON]) -> JSON:
        tally: _Tally[str] = _Tally()
        for p in _present(partials):
            for key, c in _dict(p, "Counter").items():
                tally[key] += _int(c, "Counter")
        counts: dict[str, JSON] = dict(tally)
        return counts

    def most_common(self, total: JSON) -> list[tuple[str, int]]:
        """Ties go to the smaller key, so the summary does not depend on arrival order."""
        items = [(k, _int(c, "Counter")) for k, c in _dict(total or {}, "Counter").items()]
        return heapq.nsmallest(self.top, items, key=lambda kc: (-kc[1], kc[0]))

    def describe(self, total: JSON) -> str:
        counts = _dict(total or {}, "Counter")
        n = sum(_int(c, "Counter") for c in counts.values())
        shown = ", ".join(f"{k[:40]}={c:,}" for k, c in self.most_common(total))
        return f"{n:,} values, {len(counts):,} distinct" + (f": {shown}" if shown else "")


class TopK:
    """Keeps the k largest [score, payload] pairs. Ties are ordered by the payload's canonical
    JSON (then the score's), a total order, so any split rereduces to exactly the same list."""

    def __init__(self, k: int) -> None:
        if k < 1:
            raise ValueError("TopK(k=...) must be >= 1")
        self.k = k

    @staticmethod
    def _pair(v: JSON) -> list[JSON]:
        if isinstance(v, list) and len(v) == 2:
            return [_num(v[0], "TopK"), v[1]]
        return [_num(v, "TopK score"), None]

    def _top(self, pairs: list[list[JSON]]) -> JSON:
        def rank(p: list[JSON]) -> tuple[float, str, str]:
            score = _num(p[0], "TopK")
            return (-score, json.dumps(p[1], sort_keys=True), json.dumps(score))

        top = heapq.nsmallest(self.k, pairs, key=rank)
        return [*top]

    def reduce(self, values: Sequence[JSON]) -> JSON:
        return self._top([self._pair(v) for v in values])

    def rereduce(self, partials: Sequence[JSON]) -> JSON:
        pairs: list[list[JSON]] = []
        for p in _present(partials):
            if not isinstance(p, list):
                raise ValueError(f"TopK: expected a partial as a list of pairs, got {p!r}")
            pairs.extend(self._pair(v) for v in p)
        return self._top(pairs)

    def describe(self, total: JSON) -> str:
        pairs = [self._pair(v) for v in total] if isinstance(total, list) else []
        if not pairs:
            return f"top {self.k}: no values yet"
        shown = ", ".join(
            _fmt(_num(s, "TopK")) + ("" if p is None else f" {json.dumps(p)[:30]}")
            for s, p in pairs[:3]
        )
        return f"top {len(pairs)} of {self.k}: {shown}" + (", ..." if len(pairs) > 3 else "")
