"""`beanmill check`'s agreement checks: rereduce() folds partials the way reduce() folds
values, on the whole sample and on random splits, floats to a tolerance."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Sequence

from beanmill import wire
from beanmill.errors import CheckFailed
from beanmill.jobspec import Spec
from beanmill.jsontypes import JSON

#: (pieces, how many seeded random splits) for the rereduce-equals-reduce check.
SPLITS = ((2, 5), (3, 3))
#: Floats agree to 1e-9 relative; near zero, where a cancelling sum cannot, to 1e-12 absolute.
REL_TOL = 1e-9
ABS_TOL = 1e-12
#: How much of a value or message a problem shows.
SHOWN_CHARS = 200

Fold = Callable[[Sequence[JSON]], JSON]


def check_reduce(spec: Spec, values: list[JSON], seed: int, reduce: Fold, rereduce: Fold) -> str:
    """The line that says rereduce() agrees with reduce() on the whole sample and on seeded
    random splits of it, or CheckFailed. `reduce`, `rereduce`: the spec's, through the wire."""
    n = len(values)
    whole = reduce(values)
    again = rereduce([whole])
    if not agree(spec, again, whole):
        raise CheckFailed(
            f"rereduce disagrees with reduce: rereduce([reduce(A)]) = {shown(again)} but "
            f"reduce(A) = {shown(whole)} on {n} sampled items; rereduce must fold partials "
            "the way reduce folds values"
        )
    rng = random.Random(seed)
    tried = 0
    for pieces, times in SPLITS:
        for _ in range(times if n >= pieces else 0):
            cuts = sorted(rng.sample(range(1, n), pieces - 1))
            parts = [values[a:b] for a, b in zip([0, *cuts], [*cuts, n], strict=True)]
            total = rereduce([reduce(part) for part in parts])
            if not agree(spec, total, whole):
                raise CheckFailed(split_problem(total, whole, [len(p) for p in parts]))
            tried += 1
    return f"reduce(): strict JSON; rereduce() agrees with it on {tried} random splits"


def split_problem(total: JSON, whole: JSON, sizes: list[int]) -> str:
    names = "ABC"[: len(sizes)]
    partials = ", ".join(f"reduce({x})" for x in names)
    return (
        f"rereduce disagrees with reduce: rereduce([{partials}]) = {shown(total)} but "
        f"reduce({'+'.join(names)}) = {shown(whole)} on a split of {sum(sizes)} sampled "
        f"items into {' + '.join(map(str, sizes))}; rereduce must fold partials the way "
        "reduce folds values"
    )


def round_trip(hook: str, value: JSON) -> JSON:
    try:
        text = wire.dumps(value)
    except (TypeError, ValueError, RecursionError) as exc:
        raise CheckFailed(
            f"{hook} returned a value that is not strict JSON: {cut(str(exc))}: {cut(repr(value))}"
        ) from None
    back: JSON = json.loads(text)
    return back


def agree(spec: Spec, a: JSON, b: JSON) -> bool:
    """Equal states; or, for a ready reducer whose state is a sketch (its bytes depend on
    the order of merges: Distinct, GroupBy's count of other groups), the reducer's own
    `equivalent()`, else equal results as describe() shows them."""
    if same(a, b):
        return True
    reducer = spec.reducer
    if reducer is None:
        return False
    equivalent = getattr(reducer, "equivalent", None)
    if callable(equivalent):
        return bool(equivalent(a, b))
    return reducer.describe(a) == reducer.describe(b)


def same(a: JSON, b: JSON) -> bool:
    """Equal after the wire, floats to a relative tolerance (sums in another order differ)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        if isinstance(a, int) and isinstance(b, int):
            return a == b
        return math.isclose(a, b, rel_tol=REL_TOL, abs_tol=ABS_TOL)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def shown(value: JSON) -> str:
    return cut(json.dumps(value))


def cut(text: str) -> str:
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 3] + "..."
