"""A realistic full pass: word frequencies over a directory of text files (item = file path).

    beanmill run examples/wordfreq.py:WordFreq

The first run writes 2,000 synthetic text files to ./wordfreq-corpus (set WORDFREQ_DIR to
count your own .txt files instead). Each map() reads one file and counts its words; the
Counter reducer merges the counts, and the progress line shows the most common words.
"""

from __future__ import annotations

import os
import random
import re
from collections.abc import Sequence
from pathlib import Path

from beanmill import Job
from beanmill.jsontypes import JSON
from beanmill.reducers import Counter

WORD = re.compile(r"[a-z']+")
TEXT = (
    "the of and to in is it that was for on are with as his they at be this from have or "
    "by one had not but what all were when we there can an your which their said if do "
    "will each about how up out them then she many some so these would other into has more "
    "her two like him see time could no make than first been its who now people my made "
    "over did down only way find use may water long little very after words called just "
    "where most know bean mill queue batch crash resume ledger checkpoint"
)
VOCABULARY = TEXT.split()


def write_corpus(where: Path, files: int = 2000, seed: int = 2011) -> None:
    """Zipf-like text, so the counts look like real language (and are reproducible)."""
    rng = random.Random(seed)
    weights = [1 / (rank + 1) for rank in range(len(VOCABULARY))]
    where.mkdir(parents=True, exist_ok=True)
    for n in range(files):
        words = rng.choices(VOCABULARY, weights, k=rng.randint(200, 2000))
        lines = [" ".join(words[i : i + 12]) for i in range(0, len(words), 12)]
        (where / f"doc-{n:05d}.txt").write_text("\n".join(lines) + "\n")
    (where / ".complete").write_text("")


class WordFreq(Job):
    name = "wordfreq"
    reducer = Counter(top=8)

    def __init__(self) -> None:
        self.root = Path(os.environ.get("WORDFREQ_DIR", "wordfreq-corpus"))

    def items(self) -> list[str]:
        if "WORDFREQ_DIR" not in os.environ and not (self.root / ".complete").exists():
            write_corpus(self.root)
        return sorted(str(p) for p in self.root.rglob("*.txt"))

    def map(self, item: str | int) -> JSON:
        counts: dict[str, JSON] = {}
        for word in WORD.findall(Path(str(item)).read_text(errors="replace").lower()):
            counts[word] = int(counts.get(word, 0)) + 1  # type: ignore[arg-type]
        return counts

    def reduce(self, values: Sequence[JSON]) -> JSON:
        """map() already counted one file: a batch merges those counts like partials."""
        return self.reducer.rereduce(values)


if __name__ == "__main__":
    job = WordFreq()
    print(job.reducer.describe(job.reduce([job.map(p) for p in job.items()])))
