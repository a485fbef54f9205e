"""Who holds a lease: the holder record, one delayed job in `<lock tube>.holder`.

Reserved jobs cannot be read by others, so the holder keeps this record of itself (host, pid,
since when, a token). It names the holder in LeaseHeld, and it tells a holder that reconnects
whether anyone else held the lease in between.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

import greenstalk

#: The holder record is a delayed job that no reserve can take: ten years.
RECORD_DELAY_S = 10 * 365 * 24 * 3600


@dataclass(frozen=True)
class Holder:
    """Who holds a lease: written as JSON in the holder record."""

    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)
    started_at: float = field(default_factory=time.time)
    token: str = field(default_factory=lambda: uuid.uuid4().hex)

    def describe(self) -> str:
        since = datetime.fromtimestamp(self.started_at, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        return f"pid {self.pid} on {self.host}, since {since}"

    def encode(self, lock_job: int) -> bytes:
        return json.dumps({**asdict(self), "lock_job": lock_job}).encode()

    @staticmethod
    def decode(body: bytes) -> tuple[Holder, int] | None:
        """The holder and its lock job ID, or None for a body that is not a holder record."""
        try:
            data = json.loads(body)
            lock_job = int(data.pop("lock_job"))
            return Holder(**data), lock_job
        except (ValueError, TypeError, KeyError, AttributeError):
            return None


class HolderRecord:
    """The record tube of one lock tube, read and written on the holder's connection (which
    uses the lock tube between calls)."""

    def __init__(self, lock_tube: str, ttr: int) -> None:
        self.lock_tube = lock_tube
        self.tube = f"{lock_tube}.holder"
        self.ttr = ttr
        #: The record's job ID, as last read or written.
        self.job: int | None = None

    def write(self, client: greenstalk.Client[bytes], holder: Holder, lock_job: int) -> None:
        """Replace whatever holder record there is by ours (only a holder writes it)."""
        client.use(self.tube)
        try:
            for peek in (client.peek_delayed, client.peek_ready, client.peek_buried):
                while True:
                    try:
                        client.delete(peek().id)
                    except greenstalk.NotFoundError:
                        break
            self.job = client.put(holder.encode(lock_job), delay=RECORD_DELAY_S, ttr=self.ttr)
        finally:
            client.use(self.lock_tube)

    def read(self, client: greenstalk.Client[bytes]) -> tuple[Holder, int] | None:
        """The holder and its lock job, or None when there is no record."""
        client.use(self.tube)
        try:
            job = client.peek_delayed()
        except greenstalk.NotFoundError:
            return None
        finally:
            client.use(self.lock_tube)
        self.job = job.id
        return Holder.decode(job.body)
