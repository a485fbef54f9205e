"""The wire codec: bytes on the items and results tubes to typed records and back.

Pure functions only. Nothing here ever executes or unpickles what it reads: a queue
that anyone on the network can write to must not be able to run code in a worker.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from beanmill.errors import MalformedMessage
from beanmill.ids import (
    MAX_BATCH_ID_CHARS,
    bare_batch_id,
)
from beanmill.jsontypes import JSON, Item
from beanmill.ranges import RANGE_VERSION, contiguous, range_items

VERSION = 1
#: Counts must fit SQLite's INTEGER (and mean something): a forged 10**30 is malformed.
MAX_COUNT = 2**53


@dataclass(frozen=True)
class Batch:
    """Items to map, as one job on the items tube."""

    batch: str
    items: tuple[Item, ...]
    attempt: int = 0
    bare: bool = False
    #: The job's identity tag and version (see identity.py); None in a foreign batch.
    job: str | None = None
    version: str | None = None


@dataclass(frozen=True)
class Failure:
    """Items of one batch whose map() raised the same error: kept apart, never counted."""

    error: str  # "FileNotFoundError: [Errno 2] ... 'x.txt'"
    traceback: str  # the last frames, enough to find the line
    items: tuple[Item, ...]


@dataclass(frozen=True)
class Partial:
    """A consumer's reduced value for one or more batches.

    `items` counts the items folded into `value` (none: `value` is null and not folded). A
    partial of one batch may also name the items that failed: the reducer applies the batch
    for its good items and, in the same commit, either schedules the failed ones as the
    batch's retry (`<batch>~`, `attempt + 1`, after `retry_delay` s) or, when `final`, keeps
    them as failed items. One record decides the split, so a batch handed out twice can never
    count an item twice or lose one."""

    batches: tuple[str, ...]
    items: int
    value: JSON
    failed: tuple[Failure, ...] = ()
    attempt: int = 0
    retry_delay: int = 0
    final: bool = False
    host: str = ""
    job: str | None = None  # the identity tag of the batch it came from

    @property
    def failed_items(self) -> int:
        return sum(len(f.items) for f in self.failed)


@dataclass(frozen=True)
class ErrorRecord:
    """Why a batch was buried, kept by the reducer for operators (keyed by batch, not job id)."""

    batch: str
    job_id: int
    attempts: int
    reason: str  # "failed" (map/reduce raised) or "malformed" (body unusable)
    exception: str
    traceback: str
    host: str


@dataclass(frozen=True)
class EndRecord:
    """The producer's announcement of how much work there is."""

    batches: int
    items: int
    job: str | None = None
    layout: str | None = None


@dataclass(frozen=True)
class FinishedRecord:
    """The reducer's word, on the control tube, that the job needs no more work."""

    reason: str
    items: int
    job: str | None = None


@dataclass(frozen=True)
class Partials:
    """Several jobs' partials in one result job: one put for many small jobs. Each entry
    is applied (or skipped as a duplicate) on its own, exactly like a lone partial."""

    entries: tuple[Partial, ...]


Result = Partial | Partials | ErrorRecord | EndRecord


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"{text[:20]} overflows a double")
    return value


#: One strict decoder for every body: json.loads(text, hooks) builds a new one per call,
#: half its time on a batch's short body.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float)


def _loads(body: bytes) -> Any:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedMessage(f"body is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    try:
        return _DECODER.decode(text)
    except (ValueError, RecursionError) as exc:
        raise MalformedMessage(f"body is not valid JSON ({str(exc)[:120]})") from None


def dumps(value: Any) -> bytes:
    """Compact, strict JSON (NaN and Infinity are refused: other languages cannot read them)."""
    return json.dumps(value, separators=(",", ":"), allow_nan=False).encode("utf-8")


def _check_version(obj: dict[str, Any]) -> None:
    version = obj.get("v")
    if type(version) is not int or version != VERSION:
        raise MalformedMessage(f"unknown format version {version!r} (beanmill reads {VERSION})")


def _is_item(value: Any) -> bool:
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


def _batch_id(value: Any) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_BATCH_ID_CHARS:
        raise MalformedMessage("batch id must be a non-empty string of at most 200 characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise MalformedMessage("batch id holds a lone surrogate, which is not text") from None
    return value


def _count(obj: dict[str, Any], key: str) -> int:
    value = obj.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < MAX_COUNT:
        raise MalformedMessage(f"{key!r} must be an integer from 0 to 2**53")
    return value


def encode_batch(batch: Batch) -> bytes:
    span = contiguous(batch.items)
    obj: dict[str, Any] = {
        "v": VERSION if span is None else RANGE_VERSION,
        "type": "batch",
        "batch": batch.batch,
        "attempt": batch.attempt,
    }
    if span is None:
        obj["items"] = list(batch.items)
    else:
        obj["range"] = list(span)
    _optional(obj, job=batch.job, version=batch.version)
    return dumps(obj)


def _optional(obj: dict[str, Any], **fields: str | None) -> None:
    """Fields added since the first format are written only when set: old readers ignore
    them, and a body without them reads as before."""
    obj.update({k: v for k, v in fields.items() if v is not None})


def _tag(obj: dict[str, Any], key: str) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_BATCH_ID_CHARS:
        raise MalformedMessage(f"{key!r} must be a string of at most 200 characters")
    return value


def _is_bare_text(text: str) -> bool:
    return not text.lstrip().startswith("{")


def is_bare(body: bytes) -> bool:
    """Is this items-tube body a bare item ID (UTF-8 text that does not start with `{`)?"""
    try:
        return _is_bare_text(body.decode("utf-8"))
    except UnicodeDecodeError:
        return False


def decode_batch(body: bytes) -> Batch:
    """A beanmill batch object, or any other body as one bare item ID (stripped text)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedMessage(f"body is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    if _is_bare_text(text):
        item = text.strip()
        if not item:
            raise MalformedMessage("empty body is not an item ID")
        return Batch(batch=bare_batch_id(item), items=(item,), bare=True)
    obj = _loads(body)
    if not isinstance(obj, dict):
        raise MalformedMessage("body starts like a JSON object but is not one")
    ranged = obj.get("v") == RANGE_VERSION and type(obj.get("v")) is int
    if not ranged:
        _check_version(obj)
    if obj.get("type") != "batch":
        raise MalformedMessage(f"items tube holds batches, not {obj.get('type')!r}")
    items = range_items(obj) if ranged else obj.get("items")
    if not isinstance(items, tuple) and (
        not isinstance(items, list) or not items or not all(_is_item(i) for i in items)
    ):
        raise MalformedMessage("'items' must be a non-empty list of strings or integers")
    return Batch(
        batch=_batch_id(obj.get("batch")),
        items=tuple(items),
        attempt=_count(obj, "attempt"),
        job=_tag(obj, "job"),
        version=_tag(obj, "version"),
    )


def _partial_fields(p: Partial) -> dict[str, Any]:
    fields: dict[str, Any] = {"batches": list(p.batches), "items": p.items, "value": p.value}
    if p.failed:
        fields["failed"] = [
            {"error": f.error, "traceback": f.traceback, "items": list(f.items)} for f in p.failed
        ]
        fields.update(attempt=p.attempt, retry_delay=p.retry_delay, final=p.final, host=p.host)
    _optional(fields, job=p.job)
    return fields


def encode_result(record: Result) -> bytes:
    if isinstance(record, Partials):
        return dumps(
            {
                "v": VERSION,
                "type": "partials",
                "entries": [_partial_fields(p) for p in record.entries],
            }
        )
    if isinstance(record, Partial):
        return dumps({"v": VERSION, "type": "partial", **_partial_fields(record)})
    if isinstance(record, ErrorRecord):
        return dumps(
            {
                "v": VERSION,
                "type": "error",
                "batch": record.batch,
                "job_id": record.job_id,
                "attempts": record.attempts,
                "reason": record.reason,
                "exception": record.exception,
                "traceback": record.traceback,
                "host": record.host,
            }
        )
    obj: dict[str, Any] = {
        "v": VERSION,
        "type": "end",
        "batches": record.batches,
        "items": record.items,
    }
    _optional(obj, job=record.job, layout=record.layout)
    return dumps(obj)


def _text(obj: dict[str, Any], key: str) -> str:
    value = obj.get(key, "")
    if not isinstance(value, str):
        raise MalformedMessage(f"{key!r} must be a string")
    return value


def _decode_partial(obj: Any) -> Partial:
    if not isinstance(obj, dict):
        raise MalformedMessage("a partial must be a JSON object")
    batches = obj.get("batches")
    if not isinstance(batches, list) or not batches:
        raise MalformedMessage("'batches' must be a non-empty list of batch ids")
    if "value" not in obj:
        raise MalformedMessage("a partial needs a 'value'")
    ids = tuple(_batch_id(b) for b in batches)
    failed = _failures(obj.get("failed", []))
    if failed and len(ids) != 1:
        raise MalformedMessage("only a partial of one batch may name failed items")
    final = obj.get("final", False)
    if not isinstance(final, bool):
        raise MalformedMessage("'final' must be true or false")
    return Partial(
        batches=ids,
        items=_count(obj, "items"),
        value=obj["value"],
        failed=failed,
        attempt=_count(obj, "attempt") if failed else 0,
        retry_delay=_count(obj, "retry_delay") if failed else 0,
        final=final,
        host=_text(obj, "host"),
        job=_tag(obj, "job"),
    )


def _failures(value: Any) -> tuple[Failure, ...]:
    if not isinstance(value, list):
        raise MalformedMessage("'failed' must be a list")
    out = []
    for entry in value:
        if not isinstance(entry, dict):
            raise MalformedMessage("each 'failed' entry must be an object")
        items = entry.get("items")
        if not isinstance(items, list) or not items or not all(_is_item(i) for i in items):
            raise MalformedMessage("'failed' items must be a non-empty list of item IDs")
        out.append(Failure(_text(entry, "error"), _text(entry, "traceback"), tuple(items)))
    return tuple(out)


def decode_result(body: bytes) -> Result:
    obj = _loads(body)
    if not isinstance(obj, dict):
        raise MalformedMessage("results tube holds JSON objects only")
    _check_version(obj)
    kind = obj.get("type")
    if kind == "partial":
        return _decode_partial(obj)
    if kind == "partials":
        entries = obj.get("entries")
        if not isinstance(entries, list) or not entries:
            raise MalformedMessage("'entries' must be a non-empty list of partials")
        return Partials(tuple(_decode_partial(e) for e in entries))
    if kind == "error":
        return ErrorRecord(
            batch=_batch_id(obj.get("batch")),
            job_id=_count(obj, "job_id"),
            attempts=_count(obj, "attempts"),
            reason=_text(obj, "reason"),
            exception=_text(obj, "exception"),
            traceback=_text(obj, "traceback"),
            host=_text(obj, "host"),
        )
    if kind == "end":
        return EndRecord(
            batches=_count(obj, "batches"),
            items=_count(obj, "items"),
            job=_tag(obj, "job"),
            layout=_tag(obj, "layout"),
        )
    raise MalformedMessage(f"unknown record type {kind!r}")


def encode_finished(record: FinishedRecord) -> bytes:
    obj: dict[str, Any] = {
        "v": VERSION,
        "type": "finished",
        "reason": record.reason,
        "items": record.items,
    }
    _optional(obj, job=record.job)
    return dumps(obj)


def decode_finished(body: bytes) -> FinishedRecord:
    obj = _loads(body)
    if not isinstance(obj, dict) or obj.get("type") != "finished":
        raise MalformedMessage("the control tube holds only 'finished' records")
    _check_version(obj)
    return FinishedRecord(
        reason=_text(obj, "reason"), items=_count(obj, "items"), job=_tag(obj, "job")
    )
