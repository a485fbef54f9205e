"""Several estimates from one sampled pass: the mean and total size of 10^6 simulated files,
their 90th percentile, and the share of big ones, each with its 95% interval.

    beanmill run examples/sampled_fields.py:FileSizes --order random --seed 1 --until-rel-ci 0.01

map() returns one JSON object a file, and Fields folds each field with its own reducer. The
run stops by itself once every field's interval is within 1% of its estimate (--until-field
picks one instead); `beanmill status --data-dir beanmill-data/filesizes --json` shows
`estimate.mean.ci95`, `estimate.total.ci95`, `estimate.p90.ci95` and `estimate.big.ci95`.

File i's size is log-normal, exp(10 + 0.35 z) bytes with z the normal quantile of a hash of
i, so the sizes are fixed and `python examples/sampled_fields.py` prints the exact answers.
"""

from __future__ import annotations

import math
import os
from statistics import NormalDist

from beanmill import Job
from beanmill.jsontypes import JSON
from beanmill.reducers import Fields, Mean, Proportion, Quantile, Total

BIG = 30_000  # bytes: about a quarter of the files
_NORMAL = NormalDist()


def files() -> int:
    return int(os.environ.get("SAMPLED_FILES", "1000000"))


def size(i: int) -> float:
    u = ((i * 2654435761 + 12345) % 2**32 + 0.5) / 2**32  # a Weyl sequence: evenly spread
    return round(math.exp(10 + 0.35 * _NORMAL.inv_cdf(u)), 1)


class FileSizes(Job):
    name = "filesizes"
    reducer = Fields(mean=Mean(), total=Total(), p90=Quantile(0.9), big=Proportion())

    def items(self) -> range:
        return range(files())

    def map(self, item: str | int) -> JSON:
        s = size(int(item))
        return {"mean": s, "total": s, "p90": s, "big": s > BIG}


def truth() -> dict[str, float]:
    sizes = sorted(size(i) for i in range(files()))
    return {
        "mean": math.fsum(sizes) / len(sizes),
        "total": math.fsum(sizes),
        "p90": sizes[math.ceil(0.9 * len(sizes)) - 1],
        "big": sum(s > BIG for s in sizes) / len(sizes),
    }


if __name__ == "__main__":
    for name, value in truth().items():
        print(f"{name}: {value:,.6g}")
