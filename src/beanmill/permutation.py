"""A seeded pseudo-random permutation of [0, n) in O(1) memory: a Feistel network with
cycle-walking, so position i of a population of 10^9 items costs a few hashes, not a shuffle.

Deterministic across processes, machines and Python versions (no `hash()`, no `random`), so
a producer restarted from its cursor hands out exactly the items it would have.
"""

from __future__ import annotations

from collections.abc import Iterator

ROUNDS = 6
_MASK64 = (1 << 64) - 1


def _mix(x: int) -> int:
    """splitmix64's finaliser: a cheap, well-spread 64-bit integer hash."""
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9 & _MASK64
    x = (x ^ (x >> 27)) * 0x94D049BB133111EB & _MASK64
    return x ^ (x >> 31)


class Permutation:
    """perm(i) for i in [0, n): a bijection keyed by `seed`."""

    def __init__(self, n: int, seed: int) -> None:
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError(f"a permutation needs a positive integer size, got {n!r}")
        self.n = n
        self.half_bits = max(1, ((n - 1).bit_length() + 1) // 2)
        self.half_mask = (1 << self.half_bits) - 1
        self.keys = [_mix((seed & _MASK64) ^ _mix(r + 1)) for r in range(ROUNDS)]

    def __len__(self) -> int:
        return self.n

    def _encrypt(self, x: int) -> int:
        bits, mask = self.half_bits, self.half_mask
        left, right = x >> bits, x & mask
        for key in self.keys:
            left, right = right, left ^ (_mix(right ^ key) & mask)
        return (left << bits) | right

    def _decrypt(self, x: int) -> int:
        bits, mask = self.half_bits, self.half_mask
        left, right = x >> bits, x & mask
        for key in reversed(self.keys):
            left, right = right ^ (_mix(left ^ key) & mask), left
        return (left << bits) | right

    def _check(self, i: int) -> None:
        if not 0 <= i < self.n:
            raise ValueError(f"position {i} is outside [0, {self.n})")

    def __call__(self, i: int) -> int:
        """Cycle-walk: the domain is < 4n, so under 4 steps are expected."""
        self._check(i)
        x = self._encrypt(i)
        while x >= self.n:
            x = self._encrypt(x)
        return x

    def inverse(self, j: int) -> int:
        self._check(j)
        x = self._decrypt(j)
        while x >= self.n:
            x = self._decrypt(x)
        return x

    def indices(self, start: int = 0) -> Iterator[int]:
        """perm(start), perm(start + 1), ...: where a resumed producer picks up."""
        for i in range(start, self.n):
            yield self(i)
