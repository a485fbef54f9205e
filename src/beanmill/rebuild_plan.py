"""What a rebuild re-puts: the batches of the layout that the ledger does not cover (pure).

After a checkpoint went back in time, the results applied since were deleted from the queue:
only putting their batches again brings their items back. The reducer sends the producer a
`rebuild` request with a bitmap of the batches its ledger covers (zlib, base64: a job holds
at most beanstalkd's -z bytes); the producer re-puts every other batch below its cursor. A
batch re-put that was applied after all is a duplicate, which the ledger absorbs.
"""

from __future__ import annotations

import base64
import binascii
import json
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

from beanmill.errors import MalformedMessage
from beanmill.ids import split_batch_id
from beanmill.wire import dumps

REBUILD_VERSION = 1
#: A bitmap larger than this (compressed, base64) is left out: then every batch is re-put.
MAX_APPLIED_CHARS = 48_000
#: A bitmap unpacks to at most this many bytes (a billion batches): no zip bombs.
MAX_BITMAP_BYTES = 2**27


def covered_seqs(ledger: Iterable[str], layout: str) -> set[int]:
    """Seqs of `layout` whose batch the ledger holds whole: itself, or both halves of a batch
    split for beanstalkd's -z (recursively)."""
    parts: dict[int, set[str]] = {}
    for batch_id in ledger:
        parsed = split_batch_id(batch_id)
        if parsed is not None and parsed[0] == layout:
            parts.setdefault(parsed[1], set()).add(parsed[2])
    return {seq for seq, held in parts.items() if _whole(held, "", max(map(len, held)))}


def _whole(held: set[str], suffix: str, deepest: int) -> bool:
    if suffix in held:
        return True
    if len(suffix) >= deepest:
        return False
    return _whole(held, suffix + ".0", deepest) and _whole(held, suffix + ".1", deepest)


@dataclass(frozen=True)
class RebuildRequest:
    """The reducer's ask: re-put every batch of `layout` not in `applied`.

    `job` and `layout` are None when the checkpoint lost them too (it went back to before
    its first commit): then nothing is covered. `applied` None: re-put every batch."""

    job: str | None = None
    layout: str | None = None
    applied: frozenset[int] | None = frozenset()

    def missing(self, seq: int) -> bool:
        return self.applied is None or seq not in self.applied


def encode_request(request: RebuildRequest) -> bytes:
    obj: dict[str, object] = {
        "v": REBUILD_VERSION,
        "type": "rebuild",
        "job": request.job,
        "layout": request.layout,
        "applied": None if request.applied is None else _bitmap(request.applied),
    }
    if isinstance(obj["applied"], str) and len(obj["applied"]) > MAX_APPLIED_CHARS:
        obj["applied"] = None
    return dumps(obj)


def decode_request(body: bytes) -> RebuildRequest:
    try:
        obj = json.loads(body)
        if not isinstance(obj, dict) or obj.get("type") != "rebuild":
            raise MalformedMessage("not a rebuild request")
        if obj.get("v") != REBUILD_VERSION:
            raise MalformedMessage(f"rebuild request of unknown version {obj.get('v')!r}")
        job, layout = obj.get("job"), obj.get("layout")
        if not all(v is None or isinstance(v, str) for v in (job, layout)):
            raise MalformedMessage("rebuild request with fields of the wrong type")
        applied = obj.get("applied")
        seqs = None if applied is None else _seqs(applied)
        return RebuildRequest(job, layout, seqs)
    except (ValueError, KeyError, TypeError, binascii.Error, zlib.error) as exc:
        raise MalformedMessage(f"unreadable rebuild request ({type(exc).__name__})") from None


def _bitmap(seqs: frozenset[int]) -> str:
    bits = bytearray((max(seqs) // 8 + 1) if seqs else 0)
    for seq in seqs:
        bits[seq // 8] |= 1 << (seq % 8)
    return base64.b64encode(zlib.compress(bytes(bits), 9)).decode()


def _seqs(text: object) -> frozenset[int]:
    if not isinstance(text, str):
        raise TypeError("applied is not a string")
    unpack = zlib.decompressobj()
    bits = unpack.decompress(base64.b64decode(text, validate=True), MAX_BITMAP_BYTES)
    if unpack.unconsumed_tail:
        raise ValueError("applied bitmap too large")
    return frozenset(i * 8 + b for i, byte in enumerate(bits) for b in range(8) if byte >> b & 1)
