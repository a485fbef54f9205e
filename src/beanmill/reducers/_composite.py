"""Reducers made of reducers: Fields folds each field of a mapped object with its own reducer,
GroupBy folds values per group. Their states are JSON objects of their parts' states."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from beanmill.jsontypes import JSON
from beanmill.reducers._common import _dict, _present
from beanmill.reducers._sketches import Distinct, distinct_key

__all__ = ["Fields", "GroupBy"]


class _Reducer(Protocol):
    def reduce(self, values: Sequence[JSON]) -> JSON: ...

    def rereduce(self, partials: Sequence[JSON]) -> JSON: ...

    def describe(self, total: JSON) -> str: ...


@runtime_checkable
class _Estimates(Protocol):
    def estimate(self, total: JSON) -> dict[str, JSON]: ...


def _set_population(reducer: _Reducer, population: int | None) -> None:
    """Fills in N where the reducer takes one and was not given its own."""
    if hasattr(reducer, "population") and getattr(reducer, "population", None) is None:
        reducer.population = population


def _is_flat(est: dict[str, JSON]) -> bool:
    """One estimate (value, interval), as opposed to estimates keyed by name."""
    return any(k in est and not isinstance(est[k], dict) for k in ("ci95", "sketch_ci95"))


class Fields:
    """map() returns a JSON object; each named reducer folds its own field, e.g.
    Fields(mean=Mean(), total=Total(), p90=Quantile(0.9)) folds {"mean": 3, ...}. Its
    estimate is keyed by field ("mean", "total", ...; a Quantiles field gives "name.p50")."""

    def __init__(self, **fields: _Reducer) -> None:
        if not fields:
            raise ValueError("Fields() needs at least one name=Reducer()")
        self.fields = fields
        self._population: int | None = None

    @property
    def population(self) -> int | None:
        """N for every field that estimates; setting it fills in those not given their own."""
        return self._population

    @population.setter
    def population(self, population: int | None) -> None:
        self._population = population
        for reducer in self.fields.values():
            _set_population(reducer, population)

    def reduce(self, values: Sequence[JSON]) -> JSON:
        objects = [_dict(v, "Fields: map() must return an object, got") for v in values]
        for obj in objects:
            missing = [name for name in self.fields if name not in obj]
            if missing:
                raise ValueError(f"Fields: map() returned no {', '.join(missing)}: {obj!r}")
        return {name: r.reduce([obj[name] for obj in objects]) for name, r in self.fields.items()}

    def rereduce(self, partials: Sequence[JSON]) -> JSON:
        states = [_dict(p, "Fields") for p in _present(partials)]
        for state in states:
            if set(state) != set(self.fields):
                raise ValueError(f"Fields: a partial has fields {sorted(state)}, not ours")
        return {name: r.rereduce([s[name] for s in states]) for name, r in self.fields.items()}

    def _part(self, total: JSON, name: str) -> JSON:
        return None if total is None else _dict(total, "Fields").get(name)

    def estimate(self, total: JSON) -> dict[str, JSON]:
        """Each estimating field's estimate; fields whose reducer does not estimate are left out."""
        out: dict[str, JSON] = {}
        for name, r in self.fields.items():
            if not isinstance(r, _Estimates):
                continue
            est = r.estimate(self._part(total, name))
            if _is_flat(est) or isinstance(r, GroupBy):
                out[name] = est
            else:  # Quantiles: one flat estimate per quantile
                out |= {f"{name}.{sub}": e for sub, e in est.items()}
        return out

    def interval(self, total: JSON, confidence: float = 0.95) -> tuple[float, float] | None:
        """None: each field has its own (see estimate())."""
        return None

    def describe(self, total: JSON) -> str:
        return "; ".join(
            f"{name}: {r.describe(self._part(total, name))}" for name, r in self.fields.items()
        )


def _key_hash(key: str) -> int:
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big")


class GroupBy:
    """Folds each value (a JSON object) into the group named by its key_field: the whole
    object, or its value_field when given, e.g. GroupBy("type", Mean(), value_field="size").
    At most max_groups groups are kept: those whose keys hash smallest, so any split and
    order of the batches keeps the same ones and the total stays exact; the values of every
    other group are folded into "other", and their number is counted with a Distinct sketch.
    Group sizes are unknown, so group estimates have no finite-population correction."""

    def __init__(
        self,
        key_field: str,
        reducer: _Reducer,
        value_field: str | None = None,
        max_groups: int = 100,
    ) -> None:
        if max_groups < 1:
            raise ValueError("GroupBy(max_groups=...) must be >= 1")
        self.key_field, self.reducer = key_field, reducer
        self.value_field, self.max_groups = value_field, max_groups
        self._others = Distinct()

    def _key_value(self, v: JSON) -> tuple[str, JSON]:
        obj = _dict(v, "GroupBy: map() must return an object, got")
        if self.key_field not in obj:
            raise ValueError(f"GroupBy: map() returned no {self.key_field!r}: {obj!r}")
        key = obj[self.key_field]
        name = key if isinstance(key, str) else distinct_key(key)
        if self.value_field is None:
            return name, obj
        if self.value_field not in obj:
            raise ValueError(f"GroupBy: map() returned no {self.value_field!r}: {obj!r}")
        return name, obj[self.value_field]

    def _bound(self, groups: dict[str, JSON], other: list[JSON], keys: list[JSON]) -> JSON:
        """Keeps the max_groups smallest-hash keys; the rest go to other."""
        kept = sorted(groups, key=lambda k: (_key_hash(k), k))[: self.max_groups]
        dropped = [k for k in groups if k not in set(kept)]
        other_state = self.reducer.rereduce([*other, *(groups[k] for k in dropped)])
        others = self._others.rereduce([*keys, self._others.reduce(list(dropped))])
        kept_groups: dict[str, JSON] = {k: groups[k] for k in sorted(kept)}
        return {"groups": kept_groups, "other": other_state, "other_keys": others}

    def reduce(self, values: Sequence[JSON]) -> JSON:
        by_key: dict[str, list[JSON]] = {}
        for v in values:
            key, value = self._key_value(v)
            by_key.setdefault(key, []).append(value)
        groups = {k: self.reducer.reduce(vs) for k, vs in by_key.items()}
        return self._bound(groups, [], [])

    def _parts(self, p: JSON) -> tuple[dict[str, JSON], JSON, JSON]:
        d = _dict(p, "GroupBy")
        return _dict(d.get("groups"), "GroupBy groups"), d.get("other"), d.get("other_keys")

    def rereduce(self, partials: Sequence[JSON]) -> JSON:
        parts = [self._parts(p) for p in _present(partials)]
        by_key: dict[str, list[JSON]] = {}
        for groups, _, _ in parts:
            for k, state in groups.items():
                by_key.setdefault(k, []).append(state)
        merged = {k: self.reducer.rereduce(states) for k, states in by_key.items()}
        return self._bound(merged, [o for _, o, _ in parts], [ks for _, _, ks in parts])

    def other_groups(self, total: JSON) -> int:
        """How many groups were folded into "other" (from an HLL: exact while few)."""
        value = self._others.estimate(None if total is None else self._parts(total)[2])["value"]
        return round(value) if isinstance(value, int | float) else 0

    def estimate(self, total: JSON) -> dict[str, JSON]:
        groups, other, _ = self._parts(total) if total is not None else ({}, None, None)
        if not isinstance(self.reducer, _Estimates):
            return {"groups": {}, "other": None, "other_groups": self.other_groups(total)}
        est = self.reducer.estimate
        return {
            "groups": {k: est(state) for k, state in groups.items()},
            "other": est(other) if self.other_groups(total) else None,
            "other_groups": self.other_groups(total),
        }

    def describe(self, total: JSON) -> str:
        groups, other, _ = self._parts(total) if total is not None else ({}, None, None)
        if not groups:
            return f"by {self.key_field}: no values yet"
        shown = "; ".join(f"{k}: {self.reducer.describe(s)}" for k, s in groups.items())
        n_other = self.other_groups(total)
        if n_other:
            shown += f"; other ({n_other:,} groups): {self.reducer.describe(other)}"
        return f"by {self.key_field}: {shown}"
