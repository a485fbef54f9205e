"""Every batch ID format in one place: a layout's (`s500-7`, `r1.500-7`, halves `.0`/`.1`),
a bare item's (`i-`), a malformed body's (`m-`) and a retry's (`<batch>~`, `<batch>+<n>~`).

The ledger keys on these, so each format is made and parsed only here.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

MAX_BATCH_ID_CHARS = 200
BARE_PREFIX = "i-"
MALFORMED_PREFIX = "m-"
#: A retry batch is its parent's ID plus this: deterministic, so duplicates are absorbed.
RETRY_SUFFIX = "~"


@dataclass(frozen=True)
class Layout:
    """How items become batches; part of every batch ID so two layouts never mix."""

    batch_size: int
    order: str = "sequential"
    seed: int | None = None

    @property
    def tag(self) -> str:
        if self.order == "random":
            return f"r{self.seed or 0}.{self.batch_size}"  # the order uses seed 0 for None
        return f"s{self.batch_size}"

    def batch_id(self, seq: int) -> str:
        return f"{self.tag}-{seq}"


#: `<layout>-<seq>`, with `.0`/`.1` halves for a batch split to fit beanstalkd's -z.
BATCH_ID = re.compile(r"^(s\d+|r-?\d+\.\d+)-(\d+)((?:\.[01])*)$")


def layout_of(batch_id: str) -> str | None:
    """The layout tag of a producer batch ID; None for bare items and foreign IDs."""
    match = BATCH_ID.match(batch_id)
    return match.group(1) if match else None


def split_batch_id(batch_id: str) -> tuple[str, int, str] | None:
    """(layout tag, seq, halves suffix such as `.0.1`) of a producer batch ID, else None."""
    match = BATCH_ID.match(batch_id)
    return (match.group(1), int(match.group(2)), match.group(3)) if match else None


def halves(batch_id: str) -> tuple[str, str]:
    """The two batches a batch too big for beanstalkd's -z is split into."""
    return f"{batch_id}.0", f"{batch_id}.1"


def malformed_batch_id(body: bytes) -> str:
    """The key an unusable body's stored error is kept under: the same body, the same key."""
    return MALFORMED_PREFIX + hashlib.sha256(body).hexdigest()[:32]


def retry_batch_id(batch_id: str) -> str:
    """The batch that retries `batch_id`'s failed items."""
    return batch_id + RETRY_SUFFIX


def requeue_batch_id(batch_id: str, n: int) -> str:
    """The `n`th requeue of `batch_id`'s failed items: a retry batch no one used before."""
    return retry_batch_id(f"{batch_id}+{n}")


def is_retry(batch_id: str) -> bool:
    return batch_id.endswith(RETRY_SUFFIX)


def bare_batch_id(text: str) -> str:
    """Deterministic ID for a bare item, so a foreign producer's duplicates are absorbed too."""
    return BARE_PREFIX + hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]
