"""The wire codec: round trips, bare item IDs, and that nothing a stranger puts on a tube can
do more than raise MalformedMessage (no other exception, no code run, no pickle)."""

from __future__ import annotations

import ast
import contextlib
import hashlib
import json
import os
import pickle
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import beanmill
from beanmill.errors import MalformedMessage
from beanmill.ids import MAX_BATCH_ID_CHARS, bare_batch_id
from beanmill.wire import (
    Batch,
    EndRecord,
    ErrorRecord,
    FinishedRecord,
    Partial,
    Partials,
    decode_batch,
    decode_finished,
    decode_result,
    encode_batch,
    encode_finished,
    encode_result,
    is_bare,
)

PROPERTY = settings(max_examples=150, deadline=None)

finite = st.floats(allow_nan=False, allow_infinity=False)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | finite | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=12,
)
items = st.one_of(st.text(), st.integers())
batch_ids = st.text(min_size=1, max_size=MAX_BATCH_ID_CHARS)
counts = st.integers(min_value=0, max_value=2**53 - 1)  # wire.MAX_COUNT: what SQLite holds


def obj(**fields: Any) -> bytes:
    return json.dumps(fields).encode()


BATCH = {"v": 1, "type": "batch", "batch": "s2-0", "attempt": 0, "items": ["a", 7]}
PARTIAL = {"v": 1, "type": "partial", "batches": ["s2-0"], "items": 2, "value": 9}
ERROR = {"v": 1, "type": "error", "batch": "s2-0", "job_id": 17, "attempts": 3}
END = {"v": 1, "type": "end", "batches": 5, "items": 10}
PARTIAL_FIELDS = {"batches": ["s2-1"], "items": 2, "value": 4}
PARTIALS = {"v": 1, "type": "partials", "entries": [PARTIAL_FIELDS]}


def with_(base: dict[str, Any], **changes: Any) -> bytes:
    out = {**base, **changes}
    return json.dumps({k: v for k, v in out.items() if v is not DROP}).encode()


DROP = object()
DEEP_ARRAY = b"[" * 100_000
DEEP_IN_OBJECT = b'{"v":1,"items":' + b"[" * 100_000
HUGE_INT = b"9" * 5000


# -- round trips ---------------------------------------------------------------------------


@PROPERTY
@given(batch=batch_ids, items=st.lists(items, min_size=1, max_size=20), attempt=counts)
def test_batch_round_trips(batch: str, items: list[str | int], attempt: int) -> None:
    record = Batch(batch=batch, items=tuple(items), attempt=attempt)
    assert decode_batch(encode_batch(record)) == record


@PROPERTY
@given(batches=st.lists(batch_ids, min_size=1, max_size=5), n=counts, value=json_values)
def test_partial_round_trips(batches: list[str], n: int, value: Any) -> None:
    record = Partial(batches=tuple(batches), items=n, value=value)
    assert decode_result(encode_result(record)) == record


partials = st.builds(
    Partial,
    batches=st.lists(batch_ids, min_size=1, max_size=3).map(tuple),
    items=counts,
    value=json_values,
)


@PROPERTY
@given(entries=st.lists(partials, min_size=1, max_size=5))
def test_partials_group_round_trips(entries: list[Partial]) -> None:
    record = Partials(entries=tuple(entries))
    assert decode_result(encode_result(record)) == record


@PROPERTY
@given(
    batch=batch_ids,
    job_id=counts,
    attempts=counts,
    reason=st.sampled_from(["failed", "malformed"]),
    texts=st.tuples(st.text(), st.text(), st.text()),
)
def test_error_record_round_trips(
    batch: str, job_id: int, attempts: int, reason: str, texts: tuple[str, str, str]
) -> None:
    record = ErrorRecord(batch, job_id, attempts, reason, *texts)
    assert decode_result(encode_result(record)) == record


@PROPERTY
@given(batches=counts, n=counts)
def test_end_record_round_trips(batches: int, n: int) -> None:
    record = EndRecord(batches=batches, items=n)
    assert decode_result(encode_result(record)) == record


@PROPERTY
@given(reason=st.text(), n=counts)
def test_finished_record_round_trips(reason: str, n: int) -> None:
    record = FinishedRecord(reason=reason, items=n)
    assert decode_finished(encode_finished(record)) == record


def test_encoding_is_compact_json_with_version_and_type() -> None:
    """The exact bytes that docs/wire-format.md shows."""
    assert encode_batch(Batch("s2-0", ("a", 7))) == (
        b'{"v":1,"type":"batch","batch":"s2-0","attempt":0,"items":["a",7]}'
    )
    assert encode_result(Partial(("s2-0",), 2, {"n": 3})) == (
        b'{"v":1,"type":"partial","batches":["s2-0"],"items":2,"value":{"n":3}}'
    )
    assert encode_result(EndRecord(5, 10)) == b'{"v":1,"type":"end","batches":5,"items":10}'
    assert encode_result(Partials((Partial(("i-0",), 1, 42), Partial(("x-1",), 2, 15)))) == (
        b'{"v":1,"type":"partials","entries":[{"batches":["i-0"],"items":1,"value":42},'
        b'{"batches":["x-1"],"items":2,"value":15}]}'
    )
    assert json.loads(encode_result(ErrorRecord("s2-0", 17, 3, "failed", "E", "T", "h"))) == {
        "v": 1,
        "type": "error",
        "batch": "s2-0",
        "job_id": 17,
        "attempts": 3,
        "reason": "failed",
        "exception": "E",
        "traceback": "T",
        "host": "h",
    }


@PROPERTY
@given(value=st.one_of(st.just(float("nan")), st.just(float("inf")), st.just(float("-inf"))))
def test_encoder_refuses_nan_and_infinity(value: float) -> None:
    with pytest.raises(ValueError):
        encode_result(Partial(("s1-0",), 1, {"x": [value]}))


def test_error_record_text_fields_default_to_empty() -> None:
    assert decode_result(obj(**ERROR)) == ErrorRecord("s2-0", 17, 3, "", "", "", "")


# -- bare item IDs -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "item"),
    [
        (b"42", "42"),
        (b"  42\r\n", "42"),
        (b"user:1234", "user:1234"),
        (b"hello world\n", "hello world"),
        (b"[1, 2]", "[1, 2]"),
        (b'"quoted"', '"quoted"'),
        (b"null", "null"),
        (b"3.5", "3.5"),
        ("caf\u00e9 \u2603".encode(), "caf\u00e9 \u2603"),
        (DEEP_ARRAY, "[" * 100_000),
        (HUGE_INT, "9" * 5000),
    ],
)
def test_bare_body_is_one_item_id(body: bytes, item: str) -> None:
    batch = decode_batch(body)
    assert batch == Batch(batch=bare_batch_id(item), items=(item,), attempt=0, bare=True)
    assert type(batch.items[0]) is str


@PROPERTY
@given(text=st.text(min_size=1).filter(lambda t: t.strip() and not t.lstrip().startswith("{")))
def test_any_non_object_body_is_its_stripped_text(text: str) -> None:
    batch = decode_batch(text.encode())
    assert batch.bare
    assert batch.items == (text.strip(),)
    assert batch.batch == bare_batch_id(text.strip())


@PROPERTY
@given(body=st.binary(max_size=20) | st.text(max_size=20).map(str.encode))
def test_is_bare_says_exactly_which_bodies_decode_as_bare_ids(body: bytes) -> None:
    """A signing role lets unsigned bodies through by is_bare(): it must never say yes to a
    body that decodes as a batch object (one with a Unicode space before its brace)."""
    try:
        decoded_bare: bool | None = decode_batch(body).bare
    except MalformedMessage:
        decoded_bare = None  # not UTF-8, empty, or a broken object
    if decoded_bare is not None:
        assert is_bare(body) == decoded_bare
    assert not is_bare("\u2003{}".encode())


@PROPERTY
@given(text=st.text(min_size=1).filter(lambda t: t == t.strip() and t[:1] not in ("", "{")))
def test_bare_batch_id_is_a_deterministic_sha256_prefix(text: str) -> None:
    expected = "i-" + hashlib.sha256(text.encode()).hexdigest()[:32]
    assert bare_batch_id(text) == expected
    assert decode_batch(b" " + text.encode() + b"\n").batch == expected
    assert len(expected) <= MAX_BATCH_ID_CHARS


def test_same_bare_item_put_twice_has_one_batch_id_and_distinct_items_differ() -> None:
    assert decode_batch(b"item-1").batch == decode_batch(b"item-1\n").batch
    assert decode_batch(b"item-1").batch != decode_batch(b"item-2").batch
    assert decode_batch(b"1").batch != decode_batch(b"01").batch


@pytest.mark.parametrize("body", [b"", b" ", b"\n\t \r\n"])
def test_empty_or_blank_body_is_malformed(body: bytes) -> None:
    with pytest.raises(MalformedMessage, match="empty"):
        decode_batch(body)


# -- malformed bodies ----------------------------------------------------------------------

MALFORMED_BATCHES = {
    "invalid utf-8": b"\xff\xfe item",
    "invalid utf-8 in object": b'{"v":1,"items":["\xc3\x28"]}',
    "truncated object": b'{"v":1,"type":"batch"',
    "broken json": b"{not json}",
    "deep nesting": DEEP_IN_OBJECT,
    "huge integer item": b'{"v":1,"type":"batch","batch":"b","attempt":0,"items":['
    + HUGE_INT
    + b"]}",
    "NaN item": b'{"v":1,"type":"batch","batch":"b","attempt":0,"items":[NaN]}',
    "Infinity item": b'{"v":1,"type":"batch","batch":"b","attempt":0,"items":[Infinity]}',
    "-Infinity attempt": b'{"v":1,"type":"batch","batch":"b","attempt":-Infinity,"items":[1]}',
    "unknown version": with_(BATCH, v=2),
    "version as string": with_(BATCH, v="1"),
    "no version": with_(BATCH, v=DROP),
    "result on items tube": with_(BATCH, type="partial"),
    "no type": with_(BATCH, type=DROP),
    "no items": with_(BATCH, items=DROP),
    "empty items": with_(BATCH, items=[]),
    "items not a list": with_(BATCH, items="abc"),
    "bool item": with_(BATCH, items=[1, True]),
    "float item": with_(BATCH, items=[1.5]),
    "null item": with_(BATCH, items=[None]),
    "list item": with_(BATCH, items=[[1]]),
    "object item": with_(BATCH, items=[{"id": 1}]),
    "no batch id": with_(BATCH, batch=DROP),
    "empty batch id": with_(BATCH, batch=""),
    "batch id too long": with_(BATCH, batch="x" * (MAX_BATCH_ID_CHARS + 1)),
    "integer batch id": with_(BATCH, batch=3),
    "no attempt": with_(BATCH, attempt=DROP),
    "negative attempt": with_(BATCH, attempt=-1),
    "bool attempt": with_(BATCH, attempt=False),
    "float attempt": with_(BATCH, attempt=1.0),
}


@pytest.mark.parametrize("body", MALFORMED_BATCHES.values(), ids=MALFORMED_BATCHES.keys())
def test_malformed_batch_raises_malformed_message(body: bytes) -> None:
    with pytest.raises(MalformedMessage):
        decode_batch(body)


MALFORMED_RESULTS = {
    "invalid utf-8": b"\x80\x04\x95",
    "bare text": b"42",
    "empty": b"",
    "truncated object": b'{"v":1,"type":"end","batches":5',
    "deep array": DEEP_ARRAY,
    "deep in object": DEEP_IN_OBJECT,
    "huge integer": b'{"v":1,"type":"end","batches":' + HUGE_INT + b',"items":1}',
    "huge integer value": b'{"v":1,"type":"partial","batches":["b"],"items":1,"value":'
    + HUGE_INT
    + b"}",
    "NaN value": b'{"v":1,"type":"partial","batches":["b"],"items":1,"value":NaN}',
    "Infinity value": b'{"v":1,"type":"partial","batches":["b"],"items":1,"value":[Infinity]}',
    "array": b"[1,2,3]",
    "string": b'"partial"',
    "unknown version": with_(END, v=2),
    "no version": with_(END, v=DROP),
    "unknown type": with_(END, type="total"),
    "batch on results tube": with_(BATCH),
    "partial without batches": with_(PARTIAL, batches=DROP),
    "partial with empty batches": with_(PARTIAL, batches=[]),
    "partial batches not a list": with_(PARTIAL, batches="s2-0"),
    "partial integer batch id": with_(PARTIAL, batches=[3]),
    "partial empty batch id": with_(PARTIAL, batches=[""]),
    "partial batch id too long": with_(PARTIAL, batches=["x" * (MAX_BATCH_ID_CHARS + 1)]),
    "partial without value": with_(PARTIAL, value=DROP),
    "partial negative items": with_(PARTIAL, items=-1),
    "partial bool items": with_(PARTIAL, items=True),
    "partial string items": with_(PARTIAL, items="2"),
    "error without batch": with_(ERROR, batch=DROP),
    "error string job id": with_(ERROR, job_id="17"),
    "error without attempts": with_(ERROR, attempts=DROP),
    "error integer reason": with_(ERROR, reason=1),
    "error null traceback": with_(ERROR, traceback=None),
    "end negative batches": with_(END, batches=-1),
    "end float items": with_(END, items=10.0),
    "end without items": with_(END, items=DROP),
    "partials without entries": with_(PARTIALS, entries=DROP),
    "partials with empty entries": with_(PARTIALS, entries=[]),
    "partials entries not a list": with_(PARTIALS, entries={"batches": ["b"]}),
    "partials entry not an object": with_(PARTIALS, entries=[PARTIAL_FIELDS, 3]),
    "partials entry without value": with_(PARTIALS, entries=[{"batches": ["b"], "items": 1}]),
    "partials entry bad batch id": with_(PARTIALS, entries=[{**PARTIAL_FIELDS, "batches": [""]}]),
    "partials entry negative items": with_(PARTIALS, entries=[{**PARTIAL_FIELDS, "items": -2}]),
}


@pytest.mark.parametrize("body", MALFORMED_RESULTS.values(), ids=MALFORMED_RESULTS.keys())
def test_malformed_result_raises_malformed_message(body: bytes) -> None:
    with pytest.raises(MalformedMessage):
        decode_result(body)


@pytest.mark.parametrize("number", [b"1e400", b"-1e400"])
def test_overflowing_number_is_refused_like_infinity(number: bytes) -> None:
    body = b'{"v":1,"type":"partial","batches":["s1-0"],"items":1,"value":' + number + b"}"
    with pytest.raises(MalformedMessage):
        decode_result(body)


@pytest.mark.parametrize("version", [True, 1.0])
def test_version_must_be_the_integer_1(version: object) -> None:
    with pytest.raises(MalformedMessage):
        decode_result(with_(END, v=version))


@pytest.mark.parametrize(
    ("decode", "body"),
    [
        (decode_result, with_(PARTIAL, batches=["\ud800"])),
        (decode_result, with_(ERROR, batch="s1-\udfff")),
        (decode_batch, with_(BATCH, batch="\ud800")),
        (decode_result, with_(PARTIALS, entries=[{**PARTIAL_FIELDS, "batches": ["\udc80"]}])),
    ],
    ids=["partial", "error", "batch", "partials"],
)
def test_batch_id_that_is_not_valid_unicode_is_malformed(decode: Any, body: bytes) -> None:
    assert b"\\ud" in body  # the lone surrogate travels as a valid JSON escape
    with pytest.raises(MalformedMessage):
        decode(body)


@settings(max_examples=500, deadline=None)
@given(body=st.binary(max_size=300))
def test_decoders_on_arbitrary_bytes_return_a_record_or_raise_malformed(body: bytes) -> None:
    for decode in (decode_batch, decode_result, decode_finished):
        with contextlib.suppress(MalformedMessage):
            decode(body)


json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | finite | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)
field_names = st.sampled_from(
    [
        "v",
        "type",
        "batch",
        "batches",
        "attempt",
        "items",
        "value",
        "job_id",
        "attempts",
        "entries",
        "reason",
        "exception",
        "traceback",
        "host",
    ]
)
field_values = st.one_of(
    json_like,
    st.sampled_from([1, "batch", "partial", "partials", "error", "end", "finished", ["s1-0"]]),
    st.lists(
        st.fixed_dictionaries({"batches": st.just(["s1-0"]), "items": st.just(1)}).map(
            lambda e: {**e, "value": 0}
        ),
        max_size=2,
    ),
)


@settings(max_examples=300, deadline=None)
@given(fields=st.dictionaries(field_names, field_values))
def test_decoders_on_near_miss_objects_return_a_record_or_raise_malformed(
    fields: dict[str, Any],
) -> None:
    body = json.dumps(fields).encode()
    for decode in (decode_batch, decode_result, decode_finished):
        try:
            record = decode(body)
        except MalformedMessage:
            continue
        assert isinstance(
            record, Batch | Partial | Partials | ErrorRecord | EndRecord | FinishedRecord
        )


# -- no pickle, ever -----------------------------------------------------------------------


class _Armed:
    """Unpickling this calls os.mkdir(path): the side effect proves code ran."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (os.mkdir, (str(self.path),))


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_pickle_payload_is_never_loaded(tmp_path: Path, protocol: int) -> None:
    marker = tmp_path / "code-ran"
    body = pickle.dumps(_Armed(marker), protocol=protocol)
    try:
        batch = decode_batch(body)
    except MalformedMessage:
        assert protocol > 0  # binary pickles are not UTF-8
    else:
        assert batch.bare and batch.items == (body.decode().strip(),)
    for decode in (decode_result, decode_finished):
        with pytest.raises(MalformedMessage):
            decode(body)
    assert not marker.exists()
    pickle.loads(body)  # the payload is live: loading it is exactly what must never happen
    assert marker.exists()


def test_pickled_os_system_is_malformed_or_a_bare_id() -> None:
    with pytest.raises(MalformedMessage, match="not UTF-8"):
        decode_batch(pickle.dumps(os.system))
    ascii_pickle = pickle.dumps(os.system, protocol=0)
    assert decode_batch(ascii_pickle).items == (ascii_pickle.decode().strip(),)


RISKY_MODULES = {"pickle", "_pickle", "cPickle", "dill", "marshal", "shelve", "yaml", "jsonpickle"}


@pytest.mark.parametrize("module", ["wire.py", "checkpoint.py", "cursor.py"])
def test_codecs_import_no_deserializer_that_runs_code(module: str) -> None:
    tree = ast.parse((Path(beanmill.__file__).parent / module).read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            assert not {a.name.split(".")[0] for a in node.names} & RISKY_MODULES
        elif isinstance(node, ast.ImportFrom):
            assert (node.module or "").split(".")[0] not in RISKY_MODULES
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            assert node.func.id not in {"eval", "exec", "compile", "__import__"}


# -- contiguous integers as a range (version 2 batches) ------------------------------------

RANGED = {"v": 2, "type": "batch", "batch": "s3-0", "attempt": 0, "range": [10, 13]}


@PROPERTY
@given(
    batch=batch_ids,
    first=st.integers(min_value=-(2**53), max_value=2**53 - 1000),
    n=st.integers(min_value=1, max_value=600),
    attempt=counts,
)
def test_a_run_of_integers_round_trips_as_a_range(
    batch: str, first: int, n: int, attempt: int
) -> None:
    record = Batch(batch=batch, items=tuple(range(first, first + n)), attempt=attempt, job="t")
    body = encode_batch(record)
    assert decode_batch(body) == record
    if n > 1:
        assert json.loads(body)["range"] == [first, first + n]
        assert json.loads(body)["v"] == 2
        assert "items" not in json.loads(body)


def test_a_range_body_is_the_documented_bytes() -> None:
    assert encode_batch(Batch("s3-0", (10, 11, 12))) == (
        b'{"v":2,"type":"batch","batch":"s3-0","attempt":0,"range":[10,13]}'
    )
    assert decode_batch(with_(RANGED)).items == (10, 11, 12)


@pytest.mark.parametrize(
    "items",
    [
        (1, 3, 4),  # a gap
        (3, 2, 1),  # descending
        (0, True, 2),  # a bool equals 1 but is no item ID
        (1, 2, "3"),
        (1, 1),
        ("1", "2"),
    ],
)
def test_only_runs_of_plain_integers_become_ranges(items: tuple[str | int, ...]) -> None:
    body = encode_batch(Batch("s3-0", items))
    assert b'"range"' not in body
    assert json.loads(body)["v"] == 1


@pytest.mark.parametrize(
    "changes",
    [
        {"range": [5, 5]},  # empty
        {"range": [6, 5]},  # backwards
        {"range": [0, 1_000_001]},  # over MAX_RANGE_ITEMS: a forged range must not fill memory
        {"range": [0, 2**60]},
        {"range": [0.0, 3]},
        {"range": [True, 3]},
        {"range": [0, 3, 5]},
        {"range": [0]},
        {"range": "0-3"},
        {"range": DROP},
        {"range": [0, 3], "items": [0, 1, 2]},  # both: which one is meant?
        {"range": DROP, "items": [0, 1, 2]},  # version 2 batches hold a range
    ],
)
def test_a_malformed_range_is_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(MalformedMessage):
        decode_batch(with_(RANGED, **changes))


def test_a_range_needs_version_2() -> None:
    with pytest.raises(MalformedMessage):
        decode_batch(with_(RANGED, v=1))
    with pytest.raises(MalformedMessage):
        decode_batch(with_(RANGED, v=True))
