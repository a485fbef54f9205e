"""The rebuild plan: which batches of the layout the ledger covers, and the request's bytes."""

from __future__ import annotations

import base64
import json
import random
import zlib

import pytest

from beanmill.errors import MalformedMessage
from beanmill.rebuild_plan import (
    RebuildRequest,
    covered_seqs,
    decode_request,
    encode_request,
)


def test_a_batch_is_covered_by_itself_or_by_both_halves_of_its_split() -> None:
    ledger = [
        "s50-0",
        "s50-1.0",  # half of batch 1: not covered
        "s50-2.0",
        "s50-2.1",  # both halves: covered
        "s50-3.0",
        "s50-3.1.0",
        "s50-3.1.1",  # halves of a half: covered
        "s50-4~",  # a retry batch stands for no batch of the layout
        "r1.50-5",  # another layout
        "i-abc",  # a bare item
    ]
    assert covered_seqs(ledger, "s50") == {0, 2, 3}
    assert covered_seqs(ledger, "r1.50") == {5}
    assert covered_seqs([], "s50") == set()


def test_only_batches_not_covered_are_missing() -> None:
    request = RebuildRequest("job-tag", "s50", frozenset({0, 2}))
    assert [seq for seq in range(5) if request.missing(seq)] == [1, 3, 4]
    assert all(RebuildRequest(applied=None).missing(seq) for seq in range(5))


@pytest.mark.parametrize(
    "request_",
    [
        RebuildRequest("job-tag", "s50", frozenset({0, 1, 2, 7, 9, 1000})),
        RebuildRequest(None, None, frozenset()),
        RebuildRequest("t", "r3.10", None),
    ],
)
def test_a_request_reads_back_as_written(request_: RebuildRequest) -> None:
    assert decode_request(encode_request(request_)) == request_


def test_a_bitmap_too_big_for_one_job_asks_for_every_batch_instead() -> None:
    rng = random.Random(5)
    scattered = frozenset(seq for seq in range(1_000_000) if rng.random() < 0.5)
    body = encode_request(RebuildRequest("t", "s1", scattered))
    assert len(body) < 1000 and json.loads(body)["applied"] is None
    assert decode_request(body).missing(min(scattered))  # re-put: the ledger absorbs it
    small = frozenset(range(0, 1_000_000, 2))  # regular: compresses to a few hundred bytes
    assert decode_request(encode_request(RebuildRequest("t", "s1", small))).applied == small


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b'{"v":1,"type":"finished"}',
        b'{"v":2,"type":"rebuild","applied":null}',
        b'{"v":1,"type":"rebuild","job":3,"applied":null}',
        b'{"v":1,"type":"rebuild","applied":"%%%"}',
        b'{"v":1,"type":"rebuild","applied":"' + base64.b64encode(b"not zlib") + b'"}',
        b'{"v":1,"type":"rebuild","applied":"'
        + base64.b64encode(zlib.compress(b"\xff" * 2**28))
        + b'"}',
    ],
)
def test_a_malformed_request_is_refused_in_one_error(body: bytes) -> None:
    with pytest.raises(MalformedMessage):
        decode_request(body)
