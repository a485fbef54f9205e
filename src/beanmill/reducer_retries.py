"""The reducer's retry batches: put on the items tube after the commit that scheduled them,
then noted as put; one too big for beanstalkd's -z fails its items instead."""

from __future__ import annotations

import greenstalk
import structlog

from beanmill.beanstalk.connection import Queue
from beanmill.checkpoint import Checkpoint
from beanmill.crashpoint import crashpoint
from beanmill.outcomes import Retry
from beanmill.signing import Signer, signed
from beanmill.wire import Batch, encode_batch

log = structlog.get_logger()

#: A retry put on the items tube gets this TTR when the producer's is unknown.
RETRY_TTR = 60
RETRY_TOO_BIG = (
    "the retry of these items does not fit in one job under beanstalkd's -z (its body is "
    "larger than the item's own): they count as failed; start beanstalkd with a larger -z, "
    "then `beanmill requeue`"
)


def put_retries(
    queue: Queue, ckpt: Checkpoint, tube: str, identity: str | None, signer: Signer | None
) -> bool:
    """Put the retry batches committed but not yet on the queue, then note them as put;
    True when some failed for good instead (the snapshot changed).

    Dying in between puts them twice at the next start: their IDs are fixed, so the
    second copy is a duplicate, which the ledger absorbs."""
    retries = ckpt.unput_retries()
    if not retries:
        return False
    too_big = [r for r in retries if not _put_retry(queue, tube, r, identity, signer)]
    crashpoint("reducer.after_retry_put")
    ckpt.mark_put([r.batch for r in retries if r not in too_big])
    if too_big:
        ckpt.fail_retries(too_big, RETRY_TOO_BIG, queue.address)
    log.info("retries_scheduled", batches=len(retries), items=sum(len(r.items) for r in retries))
    return bool(too_big)


def _put_retry(
    queue: Queue, tube: str, retry: Retry, identity: str | None, signer: Signer | None
) -> bool:
    retried = Batch(retry.batch, retry.items, attempt=retry.attempt, job=identity)
    body = signed(signer, encode_batch(retried))
    try:
        queue.put(tube, body, delay=retry.delay, ttr=RETRY_TTR)
    except greenstalk.JobTooBigError:
        log.error("retry_too_big", batch=retry.batch, bytes=len(body), hint=RETRY_TOO_BIG)
        return False
    return True
