"""How a producer's job ends: every item put, as many as items() said it has, or the reducer's
`finished` record seen first; then the `end` record that tells the reducer how many to expect."""

from __future__ import annotations

from collections.abc import Iterable

import structlog

from beanmill.beanstalk.connection import Queue
from beanmill.control import finished_record
from beanmill.cursor import Cursor
from beanmill.errors import SpecError
from beanmill.jsontypes import Item
from beanmill.signing import Signer, signed
from beanmill.source import population_size
from beanmill.wire import EndRecord, encode_result

log = structlog.get_logger()


def reducer_finished(queue: Queue, control_tube: str, identity: str, signer: Signer | None) -> bool:
    """The reducer stopped this run of the job (an end condition): put no more batches."""
    if finished_record(queue, control_tube, identity, signer) is None:
        return False
    log.info("job_finished", hint="the reducer stopped the job; no more batches")
    return True


def check_count(items: Iterable[Item], cursor: Cursor) -> None:
    """items() ran out: it must have given as many items as its len() promised."""
    total = population_size(items)
    if total is not None and cursor.items_put != total:
        raise SpecError(f"items() gave {cursor.items_put} items but its len() says {total}")


def end_body(cursor: Cursor, identity: str, layout: str, signer: Signer | None) -> bytes:
    """The `end` record of a finished cursor: the jobs and items put, for the reducer."""
    record = EndRecord(cursor.jobs_put, cursor.items_put, identity, layout)
    return signed(signer, encode_result(record))
