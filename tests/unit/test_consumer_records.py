"""A consumer's reading of job bodies and its partials per batch: in-process, no queue."""

from __future__ import annotations

from collections.abc import Sequence

import greenstalk
import pytest

from beanmill.consumer_records import Group, partials_of, read_batch
from beanmill.errors import BadSignature, MalformedMessage
from beanmill.jobspec import Spec
from beanmill.jsontypes import JSON, Item
from beanmill.mapping import Failed, Outcome
from beanmill.retries import RetryPolicy
from beanmill.signing import Signer
from beanmill.wire import Batch, encode_batch

KEY = Signer(b"0123456789abcdef" * 4)


class Versioned:
    name = "versioned"
    version = 2

    def items(self) -> list[Item]:
        return [1, 2]

    def map(self, item: Item) -> JSON:
        return item

    def reduce(self, values: Sequence[JSON]) -> JSON:
        return sum(v for v in values if isinstance(v, int))

    def rereduce(self, values: Sequence[JSON]) -> JSON:
        return self.reduce(values)


SPEC = Spec(Versioned(), "test:Versioned")


def test_a_batch_of_the_specs_version_or_of_none_is_read() -> None:
    for version in ("2", None):
        body = encode_batch(Batch("s2-0", (1, 2), version=version))
        assert read_batch(body, SPEC, None, False).items == (1, 2)


def test_a_batch_of_another_version_is_malformed_and_names_both_versions() -> None:
    body = encode_batch(Batch("s2-0", (1, 2), version="1"))
    with pytest.raises(MalformedMessage, match=r"version '1' of job versioned.*version '2'"):
        read_batch(body, SPEC, None, False)


def test_with_a_secret_only_signed_bodies_and_accepted_bare_ids_are_read() -> None:
    body = encode_batch(Batch("s2-0", (1, 2)))
    assert read_batch(KEY.sign(body), SPEC, KEY, False).batch == "s2-0"
    with pytest.raises(BadSignature):
        read_batch(body, SPEC, KEY, False)
    with pytest.raises(BadSignature):
        read_batch(b"item-7", SPEC, KEY, False)
    assert read_batch(b"item-7", SPEC, KEY, True).items == ("item-7",)


def test_a_groups_outcomes_are_split_into_one_partial_per_batch_in_order() -> None:
    batches = [Batch("s3-0", (1, 2, 3)), Batch("s3-1", (4,)), Batch("s3-2", (5, 6))]
    group: Group = [(greenstalk.Job(i, b""), b) for i, b in enumerate(batches)]
    outcomes: list[Outcome] = [1, 2, 3, Failed("ValueError: 4", "tb"), 5, 6]
    partials = partials_of(group, outcomes, SPEC.reduce, RetryPolicy(), "h")
    assert [(p.batches, p.items, p.value) for p in partials] == [
        (("s3-0",), 3, 6),
        (("s3-1",), 0, None),
        (("s3-2",), 2, 11),
    ]
    assert [f.items for f in partials[1].failed] == [(4,)]
