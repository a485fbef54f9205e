"""A job's identity: its name, version, batch layout, population and run, as one short tag.

The producer makes the tag when it starts a job (a new cursor) and writes it into every
batch; consumers copy it into their partials, and the reducer keeps the first one it applies
in the checkpoint. A partial, an `end` or a `finished` record with another tag belongs to
another run or version of the job, and is refused loudly instead of mixed in silently.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from beanmill.jsontypes import Item

#: Items looked at to fingerprint an indexable population: O(1) whatever its size.
SAMPLED_ITEMS = 64
TAG_CHARS = 16


@dataclass(frozen=True)
class Population:
    """What items() gave: its size and a digest of items spread evenly over it."""

    size: int
    digest: str

    def describe(self) -> str:
        return f"{self.size:,} items"


def population_of(items: Iterable[Item]) -> Population | None:
    """The fingerprint of an indexable population (range, list, ...); None for a stream,
    which the producer fingerprints as it goes (see `StreamDigest`)."""
    if not isinstance(items, Sequence):
        return None
    n = len(items)
    picks = sorted({0, n - 1, *(i * n // SAMPLED_ITEMS for i in range(SAMPLED_ITEMS))}) if n else []
    sampled = json.dumps([[i, items[i]] for i in picks], separators=(",", ":"))
    return Population(n, hashlib.sha256(sampled.encode()).hexdigest()[:TAG_CHARS])


class StreamDigest:
    """A running digest of the items of a stream in the order they are put."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()

    def update(self, items: Iterable[Item]) -> None:
        for item in items:
            self._hash.update(json.dumps(item).encode())
            self._hash.update(b"\n")

    def hexdigest(self) -> str:
        return self._hash.hexdigest()[:TAG_CHARS]


def new_run_id() -> str:
    return secrets.token_hex(8)


def job_tag(
    name: str, version: str | None, layout: str, population: Population | None, run: str
) -> str:
    """The identity tag written into every record of this run of the job."""
    parts = [name, version, layout, population.size if population else None, run]
    parts.append(population.digest if population else None)
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:TAG_CHARS]


def changed_population(then: Population, now: Population) -> str:
    """Why a resume is refused, in words an operator acts on."""
    if then.size != now.size:
        return f"items() gave {then.describe()} when this job started and {now.describe()} now"
    return f"items() gives other items than when this job started ({now.describe()} both times)"
