"""A CPU-bound full pass: an iterated SHA-256 checksum of one million synthetic records.

    beanmill run examples/checksum.py:Checksum

Every item is a record number; map() hashes the record 64 times over (about 30 µs of CPU,
like a small real computation) and keeps 32 bits of it; the total is
their sum modulo 2**61 - 1, so the exact answer is easy to recompute without beanmill:

    python examples/checksum.py
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence

from beanmill import Job

MODULUS = 2**61 - 1


class Checksum(Job):
    name = "checksum"

    def __init__(self) -> None:
        self.count = int(os.environ.get("CHECKSUM_ITEMS", "1000000"))
        self.rounds = int(os.environ.get("CHECKSUM_ROUNDS", "64"))

    def items(self) -> range:
        return range(self.count)

    def map(self, item: str | int) -> int:
        digest = f"record-{int(item)}".encode()
        for _ in range(self.rounds):
            digest = hashlib.sha256(digest).digest()
        return int.from_bytes(digest[:4], "big")

    def reduce(self, values: Sequence[int]) -> int:  # type: ignore[override]
        return sum(values) % MODULUS

    def rereduce(self, partials: Sequence[int]) -> int:  # type: ignore[override]
        return sum(partials) % MODULUS


if __name__ == "__main__":
    job = Checksum()
    print(job.reduce([job.map(i) for i in job.items()]))
