"""Sampling to convergence: the mean size of ~10^8 simulated records, without reading them all.

    beanmill run examples/sampled_mean.py:RecordSize --order random --seed 1 --until-rel-ci 0.002

Items come in a seeded uniformly random order, so the first k done are a uniform sample; the
Mean reducer reports the estimate with a 95% interval (finite-population corrected) and the
run stops by itself once the interval's half-width is 0.2% of the mean.

The sizes are skewed (log-normal-like) but their exact population mean is known: record i
has size TABLE[(i * 2654435761) % 4096], and because an odd multiplier permutes the
residues mod 4096, a population whose size is a multiple of 4096 holds every table entry
equally often. `python examples/sampled_mean.py` prints the truth.
"""

from __future__ import annotations

import math
import os

from beanmill import Job
from beanmill.reducers import Mean

CYCLE = 4096
TABLE = [int(200 * math.exp(2.0 * math.sin(r * 12.9898) ** 3 + (r % 7) / 3)) for r in range(CYCLE)]


def records() -> int:
    return CYCLE * int(os.environ.get("SAMPLED_CYCLES", "24414"))  # 99,999,744 records


def size(i: int) -> int:
    return TABLE[(i * 2654435761) % CYCLE]


class RecordSize(Job):
    name = "recordsize"
    reducer = Mean()

    def items(self) -> range:
        return range(records())

    def map(self, item: str | int) -> int:
        return size(int(item))


def truth() -> float:
    return sum(TABLE) / CYCLE


if __name__ == "__main__":
    print(f"population {records():,} records, exact mean size {truth():.4f}")
