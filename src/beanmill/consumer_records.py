"""A consumer's side of the tubes: a job's body to a batch it may map (signature, version),
and its records onto the results tube: a group's partial, each batch's alone when together
they are too big, and the error record of a job it buries."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import greenstalk
import structlog

from beanmill.beanstalk.connection import Queue
from beanmill.errors import MalformedMessage
from beanmill.jobspec import Spec
from beanmill.jsontypes import JSON
from beanmill.mapping import Outcome
from beanmill.retries import (
    RetryPolicy,
    failed_record,
    oversize_error,
    partial_of,
    shortened,
    without_value,
)
from beanmill.signing import Signer, signed, verify
from beanmill.wire import (
    Batch,
    ErrorRecord,
    Partial,
    Partials,
    Result,
    decode_batch,
    encode_result,
    is_bare,
)

log = structlog.get_logger()

#: Jobs reserved together and their batches, mapped as one and put as one record.
Group = list[tuple[greenstalk.Job[bytes], Batch]]


def read_batch(body: bytes, spec: Spec, signer: Signer | None, accept_unsigned: bool) -> Batch:
    """The batch in a job's body; MalformedMessage says why it cannot be mapped. With a
    secret, a body is mapped only if signed (or a bare ID, when `accept_unsigned`)."""
    if not (accept_unsigned and is_bare(body)):
        verify(signer, body)
    batch = decode_batch(body)
    if batch.version is not None and batch.version != spec.version:
        raise MalformedMessage(
            f"batch made for version {batch.version!r} of job {spec.name}, and this "
            f"consumer runs version {spec.version!r}: run consumers of the "
            "producer's version, then `beanmill requeue`"
        )
    return batch


def partials_of(
    group: Group,
    outcomes: Sequence[Outcome],
    reduce: Callable[[Sequence[JSON]], JSON],
    policy: RetryPolicy,
    host: str,
) -> list[Partial]:
    """Each batch's partial, from the outcomes of the group's items in order."""
    partials, start = [], 0
    for _, batch in group:
        end = start + len(batch.items)
        partials.append(partial_of(batch, outcomes[start:end], reduce, policy, host))
        start = end
    return partials


class Results:
    """Puts on the results tube, signed when the consumer has a secret."""

    def __init__(self, queue: Queue, tube: str, signer: Signer | None, ttr: int, host: str) -> None:
        self.queue, self.tube, self.signer, self.ttr, self.host = queue, tube, signer, ttr, host

    def put(self, record: Result) -> None:
        self.queue.put(self.tube, signed(self.signer, encode_result(record)), ttr=self.ttr)

    def put_group(
        self, group: Group, partials: list[Partial], jobs: list[greenstalk.Job[bytes]]
    ) -> None:
        """One record for the group, or each partial alone when that is too big; a job whose
        partial cannot fit at all is buried, and leaves `jobs` (not to be deleted)."""
        record = partials[0] if len(partials) == 1 else Partials(tuple(partials))
        try:
            self.put(record)
        except greenstalk.JobTooBigError:
            for (job, batch), partial in zip(group, partials, strict=True):
                if not self._put_alone(job, batch, partial):
                    jobs.remove(job)  # buried instead

    def _put_alone(self, job: greenstalk.Job[bytes], batch: Batch, partial: Partial) -> bool:
        """A group's partial that did not fit, put on its own; if it still does not fit, its
        batch fails for good without its value; False if even that cannot fit, and the job
        was buried instead."""
        for candidate in (partial, without_value(partial, batch)):
            try:
                self.put(candidate)
                return True
            except greenstalk.JobTooBigError:
                continue
        error = ValueError(oversize_error(partial))
        self.bury(job, failed_record(job.id, batch, error, self.host))
        log.error("batch_buried", batch=batch.batch, job_id=job.id, error=str(error))
        return False

    def bury(self, job: greenstalk.Job[bytes], record: ErrorRecord) -> None:
        """Tell the reducer why (the record must get through even with a small -z), then
        bury."""
        try:
            self.put(record)
        except greenstalk.JobTooBigError:
            self.put(shortened(record))
        self.queue.bury(job)
