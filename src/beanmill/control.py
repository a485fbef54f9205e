"""The control tube: the reducer's `finished` record, read only when it is this job's own.

A record is trusted only when it decodes and names this run's identity: a stale one from an
earlier run of the same job name on a shared beanstalkd, or any other body put there, is
buried with a logged reason, so it can neither stop a producer nor drain a queue.
"""

from __future__ import annotations

import structlog

from beanmill.beanstalk.connection import Queue
from beanmill.errors import MalformedMessage
from beanmill.signing import Signer, verify
from beanmill.wire import FinishedRecord, decode_finished

log = structlog.get_logger()

#: Bodies looked at per call: a flood of junk is buried a few at a time, never all at once.
MAX_LOOKS = 20


def finished_record(
    queue: Queue, tube: str, identity: str | None, signer: Signer | None = None
) -> FinishedRecord | None:
    """This run's finished record on `tube`, burying whatever else comes first there; with a
    signer, a record must also carry a good tag.

    With no identity known yet (a consumer before its first batch) nothing is judged."""
    if identity is None:
        return None
    for _ in range(MAX_LOOKS):
        job = queue.peek_ready(tube)
        if job is None:
            return None
        try:
            verify(signer, job.body)
            record = decode_finished(job.body)
        except MalformedMessage as exc:
            reason = str(exc)
        else:
            if record.job == identity:
                return record
            reason = (
                f"finished record of another run of this job (identity {record.job}, this "
                f"run is {identity}): stale, from an earlier run on this beanstalkd"
            )
        taken = queue.reserve_job(job.id)
        if taken is not None:
            queue.bury(taken)
            log.warning("control_record_buried", job_id=job.id, tube=tube, reason=reason)
    return None
