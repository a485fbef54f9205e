"""Signed bodies: every record type signs, decodes and verifies as it was; a changed byte, a
wrong key or a missing tag fails; and a secret file open to others is refused."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import stat
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from beanmill.errors import BadSignature, MalformedMessage, SecretFileError
from beanmill.signing import Signer, create_secret, load_secret, signed, verify
from beanmill.wire import (
    Batch,
    EndRecord,
    ErrorRecord,
    Failure,
    FinishedRecord,
    Partial,
    Partials,
    Result,
    decode_batch,
    decode_finished,
    decode_result,
    encode_batch,
    encode_finished,
    encode_result,
)

KEY = Signer(b"0123456789abcdef" * 4)
OTHER = Signer(b"another secret")
PROPERTY = settings(max_examples=200, deadline=None)

# Floats that round-trip through JSON text, the biggest integers a count may hold and more
# in values, text beyond ASCII (and U+2028, which some encoders escape), nested values.
floats = st.floats(allow_nan=False, allow_infinity=False)
text = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**30), 10**30) | floats | text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=12,
)
items = st.one_of(text.filter(bool), st.integers(-(2**63), 2**63))
batch_ids = text.filter(bool)
counts = st.integers(0, 2**53 - 1)
failures = st.builds(
    Failure, error=text, traceback=text, items=st.lists(items, min_size=1, max_size=3).map(tuple)
)
partials = st.builds(
    Partial,
    batches=st.lists(batch_ids, min_size=1, max_size=3).map(tuple),
    items=counts,
    value=json_values,
)
failed_partials = st.builds(
    Partial,
    batches=batch_ids.map(lambda b: (b,)),
    items=counts,
    value=json_values,
    failed=st.lists(failures, min_size=1, max_size=2).map(tuple),
    attempt=counts,
    retry_delay=counts,
    final=st.booleans(),
    host=text,
)
results: st.SearchStrategy[Result] = st.one_of(
    partials,
    failed_partials,
    st.lists(partials | failed_partials, min_size=1, max_size=3).map(
        lambda ps: Partials(tuple(ps))
    ),
    st.builds(
        ErrorRecord,
        batch=batch_ids,
        job_id=counts,
        attempts=counts,
        reason=text,
        exception=text,
        traceback=text,
        host=text,
    ),
    st.builds(EndRecord, batches=counts, items=counts),
)
batches = st.builds(
    Batch, batch=batch_ids, items=st.lists(items, min_size=1, max_size=8).map(tuple), attempt=counts
)


@PROPERTY
@given(record=results)
def test_every_result_record_signs_decodes_and_verifies_as_it_was(record: Result) -> None:
    body = KEY.sign(encode_result(record))
    KEY.verify(body)
    assert decode_result(body) == record
    assert json.loads(body)["sig"] == KEY.tag(encode_result(record))


@PROPERTY
@given(batch=batches)
def test_every_batch_signs_decodes_and_verifies_as_it_was(batch: Batch) -> None:
    body = KEY.sign(encode_batch(batch))
    KEY.verify(body)
    assert decode_batch(body) == batch


@PROPERTY
@given(reason=text, n=counts)
def test_finished_records_sign_decode_and_verify_as_they_were(reason: str, n: int) -> None:
    record = FinishedRecord(reason, n)
    body = KEY.sign(encode_finished(record))
    KEY.verify(body)
    assert decode_finished(body) == record


@PROPERTY
@given(batch=batches, data=st.data())
def test_a_change_to_any_one_byte_fails(batch: Batch, data: st.DataObject) -> None:
    body = bytearray(KEY.sign(encode_batch(batch)))
    at = data.draw(st.integers(0, len(body) - 1))
    body[at] = data.draw(st.integers(0, 255).filter(lambda b: b != body[at]))
    with pytest.raises(BadSignature):
        KEY.verify(bytes(body))


def test_a_body_signed_with_another_key_fails() -> None:
    body = OTHER.sign(encode_result(EndRecord(batches=3, items=6)))
    with pytest.raises(BadSignature, match="does not match"):
        KEY.verify(body)


@pytest.mark.parametrize(
    "body",
    [
        encode_result(EndRecord(batches=0, items=0)),
        b'{"v":1,"type":"end","batches":0,"items":0,"sig":""}',
        b'{"v":1,"type":"end","batches":0,"items":0,"sig":"' + b"A" * 64 + b'"}',
        b"42",
        b"",
        b"\xff\xfe",
    ],
)
def test_a_body_without_a_tag_fails_and_is_malformed(body: bytes) -> None:
    with pytest.raises(BadSignature, match=r"^bad signature: no tag") as caught:
        KEY.verify(body)
    assert isinstance(caught.value, MalformedMessage)  # buried like any unusable body


def test_the_tag_moved_elsewhere_in_the_object_fails() -> None:
    unsigned = encode_result(EndRecord(batches=3, items=6))
    body = b'{"sig":"' + KEY.tag(unsigned).encode() + b'",' + unsigned[1:]
    with pytest.raises(BadSignature):
        KEY.verify(body)


def test_a_foreign_producer_signs_its_own_bytes_in_a_few_lines() -> None:
    """The recipe of docs/wire-format.md: any JSON formatting, the key from the file."""
    batch = {"v": 1, "type": "batch", "batch": "x-1", "attempt": 0, "items": ["café", 7]}
    payload = json.dumps(batch, indent=1).encode()
    tag = hmac.new(KEY.key, payload, hashlib.sha256).hexdigest()
    body = payload[:-1] + b',"sig":"' + tag.encode() + b'"}\n'
    KEY.verify(body)
    assert decode_batch(body) == Batch("x-1", ("café", 7))


def test_without_a_secret_bodies_pass_as_they_are() -> None:
    body = encode_result(EndRecord(batches=1, items=1))
    assert signed(None, body) == body
    verify(None, body)
    verify(KEY, signed(KEY, body))


def test_only_objects_are_signed() -> None:
    with pytest.raises(ValueError, match="JSON object"):
        KEY.sign(b"42")


def test_the_key_is_never_in_a_repr() -> None:
    assert "0123" not in repr(KEY)


# -- the secret file -------------------------------------------------------------------------


def _secret(tmp_path: Path, content: bytes, mode: int) -> Path:
    path = tmp_path / "secret"
    path.write_bytes(content)
    path.chmod(mode)
    return path


def test_the_key_is_the_file_without_surrounding_whitespace(tmp_path: Path) -> None:
    assert load_secret(_secret(tmp_path, b"s3cret\n", 0o600)).key == b"s3cret"
    assert load_secret(_secret(tmp_path, b"s3cret\n", 0o400)).key == b"s3cret"


@pytest.mark.parametrize(
    ("mode", "words"),
    [(0o644, "readable"), (0o640, "readable"), (0o604, "readable"), (0o620, "writable")],
)
def test_a_secret_file_open_to_others_is_refused_with_what_to_do(
    tmp_path: Path, mode: int, words: str
) -> None:
    path = _secret(tmp_path, b"s3cret\n", mode)
    with pytest.raises(SecretFileError) as caught:
        load_secret(path)
    assert str(caught.value) == (
        f"secret file {path} is {words} by others (mode {mode:04o}): chmod 600 {path}"
    )


@pytest.mark.parametrize("content", [b"", b" \n"])
def test_an_empty_secret_file_is_refused(tmp_path: Path, content: bytes) -> None:
    with pytest.raises(SecretFileError, match="is empty: fill it with"):
        load_secret(_secret(tmp_path, content, 0o600))


def test_a_missing_secret_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SecretFileError, match="does not exist: create it with"):
        load_secret(tmp_path / "nope")


def test_a_directory_is_not_a_secret_file(tmp_path: Path) -> None:
    with pytest.raises(SecretFileError, match="not a regular file"):
        load_secret(tmp_path)


def test_create_secret_makes_32_random_bytes_private_once(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    old = os.umask(0o022)
    try:
        assert create_secret(path) is True
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    first = path.read_bytes()
    assert len(bytes.fromhex(first.decode().strip())) == 32
    assert create_secret(path) is False
    assert path.read_bytes() == first, "an existing secret is never replaced"
    assert load_secret(path).key == first.strip()
    assert [p.name for p in tmp_path.iterdir()] == ["secret"], "no temp file left behind"
