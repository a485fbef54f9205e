"""Commands on beanstalkd jobs: puts, reserves, deletes, buries, touches; the link (connect,
reconnect, QueueLost) is in link.py, the reads in peeks.py."""

from __future__ import annotations

import greenstalk
import structlog

from beanmill.beanstalk import pipeline
from beanmill.beanstalk.link import (
    CONNECTION_ERRORS,
    DEFAULT_PRIORITY,
    connect,
    lost_on_error,
    parse_address,
)
from beanmill.beanstalk.peeks import Peeks

__all__ = [
    "CONNECTION_ERRORS",
    "DEFAULT_PRIORITY",
    "Queue",
    "connect",
    "parse_address",
    "still_held",
]

log = structlog.get_logger()


class Queue(Peeks):
    """A role's connection: the job commands, on a link that reconnects (see Link)."""

    def put(
        self,
        tube: str,
        body: bytes,
        *,
        delay: int = 0,
        ttr: int = 60,
        priority: int = DEFAULT_PRIORITY,
    ) -> int:
        """Put one job; while beanstalkd's binlog disk is full, wait and put it again."""

        def put() -> int:
            with lost_on_error(self.address):
                self._use(tube)
                job_id: int = self.client.put(body, priority=priority, delay=delay, ttr=ttr)
            return job_id

        return self._binlog_retried(put, "put", tube)

    def reserve(self, timeout: int) -> greenstalk.Job[bytes] | None:
        """A job, or None when none came within `timeout` seconds."""
        try:
            with lost_on_error(self.address):
                job: greenstalk.Job[bytes] = self.client.reserve(timeout=timeout)
        except (greenstalk.TimedOutError, greenstalk.DeadlineSoonError):
            return None
        return job

    def delete(self, job_id: int) -> bool:
        """False when the job is gone already (TTR expired and it was handed out again)."""

        def delete() -> bool:
            try:
                with lost_on_error(self.address):
                    self.client.delete(job_id)
            except greenstalk.NotFoundError:
                return False
            return True

        return self._binlog_retried(delete, "delete", None)

    def reserve_many(self, timeout: int, most: int) -> list[greenstalk.Job[bytes]]:
        """Wait up to `timeout` s for one job, then take up to `most - 1` more that are ready
        now, in one more round trip."""
        first = self.reserve(timeout)
        if first is None:
            return []
        return [first, *self.reserve_many_ready(most - 1)]

    def reserve_many_ready(self, most: int) -> list[greenstalk.Job[bytes]]:
        with lost_on_error(self.address):
            return pipeline.reserve_ready(self.client, most)

    def delete_many(self, job_ids: list[int]) -> int:
        """How many were there to delete (after a refused delete, a retry counts low)."""

        def delete_many() -> int:
            with lost_on_error(self.address):
                return pipeline.delete_many(self.client, job_ids)

        return self._binlog_retried(delete_many, "delete", None)

    def touch_many(self, job_ids: list[int]) -> int:
        with lost_on_error(self.address):
            return pipeline.touch_many(self.client, job_ids)

    def put_many(
        self, tube: str, bodies: list[bytes], *, ttr: int, priority: int = DEFAULT_PRIORITY
    ) -> list[int]:
        """Put many jobs in few round trips. A retry after a refusal puts them all again:
        those stored the first time become duplicates, which the reducer's ledger absorbs."""

        def put_many() -> list[int]:
            with lost_on_error(self.address):
                self._use(tube)
                return pipeline.put_many(self.client, bodies, priority=priority, ttr=ttr)

        return self._binlog_retried(put_many, "put", tube)

    def bury(self, job: greenstalk.Job[bytes]) -> bool:
        """False when the job is no longer ours (TTR expired, or a refused bury took it)."""

        def bury() -> bool:
            try:
                with lost_on_error(self.address):
                    self.client.bury(job, priority=DEFAULT_PRIORITY)
            except greenstalk.NotFoundError:
                return False
            return True

        return self._binlog_retried(bury, "bury", None)

    def release(self, job: greenstalk.Job[bytes], delay: int) -> None:
        """Back to ready after `delay` s, no attempt counted (the job was not at fault)."""

        def release() -> None:
            with lost_on_error(self.address):
                self.client.release(job, priority=DEFAULT_PRIORITY, delay=delay)

        self._binlog_retried(release, "release", None)

    def touch(self, job: greenstalk.Job[bytes]) -> bool:
        """False when this connection no longer holds the job (its TTR ran out)."""
        try:
            with lost_on_error(self.address):
                self.client.touch(job)
        except greenstalk.NotFoundError:
            return False
        return True

    def ttr(self, job: greenstalk.Job[bytes]) -> int | None:
        """The job's TTR; None when the job is gone (done by another consumer already)."""
        try:
            with lost_on_error(self.address):
                return int(self.client.stats_job(job)["ttr"])
        except greenstalk.NotFoundError:
            return None

    def drain(self, tube: str) -> int:
        """Delete every ready, delayed and buried job of a tube (reserved ones stay)."""
        with lost_on_error(self.address):
            self.client.use(tube)
            self._using = tube
            deleted = 0
            for peek in (self.client.peek_ready, self.client.peek_delayed, self.client.peek_buried):
                while True:
                    try:
                        job = peek()
                    except greenstalk.NotFoundError:
                        break
                    deleted += self.delete(job.id)
        return deleted

    def reserve_job(self, job_id: int) -> greenstalk.Job[bytes] | None:
        """Reserve this job by ID (to bury it); None if another client took it first."""
        try:
            with lost_on_error(self.address):
                job: greenstalk.Job[bytes] = self.client.reserve_job(job_id)
        except greenstalk.NotFoundError:
            return None
        return job


def still_held(queue: Queue, jobs: list[greenstalk.Job[bytes]]) -> list[greenstalk.Job[bytes]]:
    """Touch the jobs in hand; those this connection still holds. A touch that meets
    NOT_FOUND means the job's TTR ran out while its host was cut off (or paused), and another
    consumer may have it now: it is no longer touched; its partial, if put, is a duplicate
    that the reducer's ledger drops, and its delete finds nothing."""
    if queue.touch_many([job.id for job in jobs]) == len(jobs):
        return jobs
    kept = [job for job in jobs if queue.touch(job)]
    log.warning(
        "jobs_lost_while_held",
        jobs=len(jobs) - len(kept),
        hint="their TTR ran out (a partition, or a pause longer than the TTR) and beanstalkd "
        "handed them out again; the total stays exact",
    )
    return kept
