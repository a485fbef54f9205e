"""What a consumer reports of a batch with failed items: in-process, no queue."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pytest

from beanmill.jsontypes import JSON
from beanmill.mapping import Failed, Outcome
from beanmill.retries import (
    RETRY_DELAY_MAX_S,
    RetryPolicy,
    failed_record,
    malformed_record,
    oversize_error,
    partial_of,
    shortened,
    without_value,
)
from beanmill.wire import Batch, decode_result, encode_result

MISSING = Failed("FileNotFoundError: 7.txt", "tb-7")
DOWN = Failed("ConnectionError: db down", "tb-db")


def total(values: Sequence[JSON]) -> JSON:
    return sum(v for v in values if isinstance(v, int))


def test_good_items_are_reduced_and_failed_ones_grouped_by_error() -> None:
    batch = Batch("s5-0", (1, 2, 3, 4, 5), attempt=0, job="tag")
    outcomes: list[Outcome] = [1, MISSING, 3, DOWN, MISSING]
    partial = partial_of(batch, outcomes, total, RetryPolicy(3, 2), "h")
    assert (partial.items, partial.value) == (2, 4)
    assert [(f.error, f.items) for f in partial.failed] == [
        ("FileNotFoundError: 7.txt", (2, 5)),
        ("ConnectionError: db down", (4,)),
    ]
    assert (partial.attempt, partial.retry_delay, partial.final) == (0, 2, False)
    assert (partial.host, partial.job) == ("h", "tag")
    assert decode_result(encode_result(partial)) == partial, "it travels as it is"


@pytest.mark.parametrize(
    ("attempt", "delay", "final"), [(0, 1, False), (1, 2, False), (2, 4, True), (30, None, True)]
)
def test_the_delay_doubles_up_to_a_cap_and_the_last_attempt_is_final(
    attempt: int, delay: int | None, final: bool
) -> None:
    policy = RetryPolicy(max_attempts=3, retry_delay=1)
    assert policy.delay(attempt) == (RETRY_DELAY_MAX_S if delay is None else delay)
    assert policy.final(attempt) is final


@pytest.mark.parametrize(
    "reduce",
    [lambda v: 1 / 0, lambda v: math.nan, lambda v: {1, 2}],
    ids=["raises", "nan", "a-set"],
)
def test_a_reduce_that_fails_or_returns_what_json_cannot_carry_fails_the_whole_batch(
    reduce: object,
) -> None:
    batch = Batch("s3-1", (1, 2, 3))
    partial = partial_of(batch, [1, 2, MISSING], reduce, RetryPolicy(), "h")  # type: ignore[arg-type]
    assert partial.items == 0 and partial.value is None
    assert [f.items for f in partial.failed] == [(1, 2, 3)]
    encode_result(partial)  # and the partial itself still encodes


def test_a_partial_too_big_becomes_its_batch_failed_for_good() -> None:
    batch = Batch("s3-1", (1, 2, 3), attempt=0)
    partial = partial_of(batch, [1, 2, MISSING], total, RetryPolicy(), "h")
    small = without_value(partial, batch)
    assert (small.items, small.value, small.final) == (0, None, True)
    assert small.failed[0].items == (1, 2, 3)
    assert "over beanstalkd's max job size" in small.failed[0].error
    assert "1 items failed too" in oversize_error(partial)


def test_error_records_name_the_batch_or_the_body_and_shorten_to_fit() -> None:
    record = failed_record(9, Batch("s3-1", (1,), attempt=2), ValueError("x" * 500), "h")
    assert (record.batch, record.attempts, record.reason) == ("s3-1", 3, "failed")
    short = shortened(record)
    assert len(short.exception) == 200 and short.traceback == ""
    bad = malformed_record(4, b"{oops", "not JSON", "h")
    assert bad.batch == malformed_record(5, b"{oops", "other", "h").batch, "same body, same key"
    assert bad.reason == "malformed"
