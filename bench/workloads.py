"""The benchmark's maps and job specs, shared by beanmill and its baselines.

Every map is a plain module-level function, so `multiprocessing.Pool`, Celery and RQ run
exactly the code that the beanmill specs below run. Sizes and the CPU map's cost come from
the environment, which `bench/run.py` sets for every process it starts:

- BENCH_ITEMS: how many items `items()` yields (range(BENCH_ITEMS)).
- BENCH_CPU_ROUNDS: SHA-256 rounds per item of the CPU map. A fixed loop count, so every
  process does the same deterministic work; run.py picks it once per run by timing the map
  in the parent (about 50 µs per item) and passes it down. Default 120 (about 50 µs on a
  2020s x86 core).
- BENCH_SLEEP_S: the I/O map's sleep per item (default 0.010).
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterable, Sequence

from beanmill import Job

MODULUS = 2**61 - 1


def _items() -> int:
    return int(os.environ.get("BENCH_ITEMS", "1000"))


ROUNDS = int(os.environ.get("BENCH_CPU_ROUNDS", "120"))
SLEEP_S = float(os.environ.get("BENCH_SLEEP_S", "0.010"))


def cpu_map(item: int | str, rounds: int | None = None) -> int:
    """About 50 µs of CPU: an iterated SHA-256 of the record, 32 bits of it kept."""
    digest = f"record-{int(item)}".encode()
    for _ in range(ROUNDS if rounds is None else rounds):
        digest = hashlib.sha256(digest).digest()
    return int.from_bytes(digest[:4], "big")


def trivial_map(item: int | str) -> int:
    return int(item) % 7


def sleep_map(item: int | str) -> int:
    time.sleep(SLEEP_S)
    return 1


def cpu_chunk(start: int, stop: int) -> int:
    """A chunk of the CPU map, summed: one Celery/RQ task of the peer rows."""
    return sum(cpu_map(i) for i in range(start, stop)) % MODULUS


class _Sum(Job):
    """items() is range(BENCH_ITEMS); the total is the sum of the mapped values mod 2**61-1."""

    def items(self) -> Iterable[int | str]:
        return range(_items())

    def reduce(self, values: Sequence[int]) -> int:  # type: ignore[override]
        return sum(values) % MODULUS

    def rereduce(self, partials: Sequence[int]) -> int:  # type: ignore[override]
        return sum(partials) % MODULUS


class CpuSum(_Sum):
    name = "bench-cpu"

    def map(self, item: int | str) -> int:
        return cpu_map(item)


class TrivialSum(_Sum):
    name = "bench-trivial"

    def map(self, item: int | str) -> int:
        return trivial_map(item)


class SleepCount(_Sum):
    name = "bench-sleep"

    def map(self, item: int | str) -> int:
        return sleep_map(item)


class BareSum(_Sum):
    """Bare item IDs put by a foreign producer: items() is empty, map() parses the body."""

    name = "bench-bare"

    def items(self) -> list[str]:
        return []

    def map(self, item: int | str) -> int:
        return int(item)


class Huge(_Sum):
    """range(10**8): the producer-memory row runs its producer against no consumers."""

    name = "bench-huge"

    def items(self) -> range:
        return range(10**8)

    def map(self, item: int | str) -> int:
        return trivial_map(item)


class ReducerResume(_Sum):
    """The reducer row's job: a checkpoint of 10**7 applied items is built for it."""

    name = "bench-reducer"

    def items(self) -> range:
        return range(10**7)

    def map(self, item: int | str) -> int:
        return int(item)


def expected_trivial(n: int) -> int:
    return sum(range(7)) * (n // 7) + sum(range(n % 7))


def expected_bare(n: int) -> int:
    return (n * (n - 1) // 2) % MODULUS
