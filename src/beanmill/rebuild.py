"""`--rebuild`: after the checkpoint went back in time, put again what its ledger lacks.

A checkpoint that lost commits (its `-wal` gone after a crash, an old copy restored) is
refused, because the results those commits applied were deleted from the queue. The way
forward is to re-put their batches:

1. `reducer --rebuild` writes `<checkpoint>.rebuild` first (so a crash anywhere later resumes
   the rebuild), then records the checkpoint's own commit as the last one, so it is accepted.
2. While that mark is there, each reducer start puts a `rebuild` request on `<job>.rebuild`:
   which batches of the layout its ledger covers (rebuild_plan.py). Retries it had scheduled
   are put again, and a `finished` record from the checkpoint's lost future is removed.
3. The producer, at its start (and with `--rebuild` it waits for the request), re-puts every
   batch below its cursor that the request does not cover, through its own batching, put
   path, lease and identity; then, if it had finished, its `end` record as always.
4. Once the job is complete the reducer removes the request and the mark.

Nothing can count twice: a batch re-put that was applied after all is a duplicate, which the
ledger absorbs.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from beanmill.beanstalk.connection import Queue
from beanmill.crashpoint import crashpoint
from beanmill.errors import MalformedMessage
from beanmill.files import atomic_write
from beanmill.jobspec import Spec
from beanmill.rebuild_plan import RebuildRequest, covered_seqs, decode_request, encode_request
from beanmill.signing import Signer, signed, verify

if TYPE_CHECKING:  # the producer never loads the checkpoint's modules (SQLite)
    from beanmill.checkpoint import Checkpoint
    from beanmill.producer import Producer

#: How often a producer started with --rebuild looks for the reducer's request.
POLL_S = 0.2
REQUEST_TTR = 60

log = structlog.get_logger()


def rebuild_tube(job: str) -> str:
    """Holds the reducer's one rebuild request while a rebuild is due."""
    return f"{job}.rebuild"


def marker_path(checkpoint: Path) -> Path:
    return checkpoint.with_name(checkpoint.name + ".rebuild")


def rebuild_due(checkpoint: Path) -> bool:
    """A rebuild was asked for and the job is not complete yet (status: `rebuild_due`)."""
    return marker_path(checkpoint).exists()


def accept_rollback(checkpoint: Path) -> None:
    """Mark the rebuild as due, then take the checkpoint's commit as the last one made, so the
    rollback check accepts it. Done again after a crash, it does the same."""
    from beanmill.checkpoint_store import opened, read_meta, read_snapshot
    from beanmill.integrity import write_seq

    meta = {}
    if checkpoint.is_file():
        with opened(checkpoint) as db:
            meta = read_meta(db, checkpoint)
    mark = {"checkpoint": meta.get("id"), "seq": meta.get("seq", 0), "at": time.time()}
    atomic_write(marker_path(checkpoint), json.dumps(mark).encode() + b"\n")
    if meta.get("id"):
        write_seq(checkpoint, str(meta["id"]), int(meta.get("seq", 0)))
    if checkpoint.is_file() and read_snapshot(checkpoint).complete:
        marker_path(checkpoint).unlink()  # nothing is missing: no rebuild is due
        return
    log.warning(
        "rebuild_accepted",
        checkpoint=str(checkpoint),
        commit=meta.get("seq", 0),
        hint="the producer re-puts every batch its ledger lacks; start it if it is not running",
    )


def request_rebuild(queue: Queue, spec: Spec, ckpt: Checkpoint, signer: Signer | None) -> None:
    """The reducer's side, at each start while the mark is there: the request, fresh."""
    from beanmill.checkpoint_store import write_transaction

    snap = ckpt.snapshot()
    applied: frozenset[int] = frozenset()
    if snap.layout is not None:
        rows = ckpt.db.execute("SELECT batch FROM ledger WHERE batch LIKE ?", (f"{snap.layout}-%",))
        applied = frozenset(covered_seqs((row[0] for row in rows), snap.layout))
    with write_transaction(ckpt.db):  # put before, maybe applied in the lost commits
        ckpt.db.execute("UPDATE pending SET put = 0")
    queue.drain(spec.control_tube)  # a finished record from the checkpoint's lost future
    queue.drain(rebuild_tube(spec.name))  # the request of a reducer that died before us
    request = RebuildRequest(snap.identity, snap.layout, applied)
    queue.put(rebuild_tube(spec.name), signed(signer, encode_request(request)), ttr=REQUEST_TTR)
    log.warning("rebuild_requested", covered=len(applied), layout=snap.layout)


def finish_rebuild(queue: Queue, job: str, checkpoint: Path) -> None:
    """The job is complete: the request goes, then the mark."""
    if not rebuild_due(checkpoint):
        return
    queue.drain(rebuild_tube(job))
    marker_path(checkpoint).unlink(missing_ok=True)
    log.info("rebuild_done", checkpoint=str(checkpoint))


def serve_rebuild(producer: Producer, wait: bool) -> int:
    """The producer's side, at its start: re-put the batches below its cursor that the
    request does not cover; how many. With `wait`, wait for a request (or a stop)."""
    request = _request(producer, wait)
    if request is None:
        return 0
    p = producer
    if request.job not in (None, p.identity) or request.layout not in (None, p.layout.tag):
        log.error(
            "rebuild_request_ignored",
            reason=f"it is for run {request.job} layout {request.layout}, this producer's "
            f"are {p.identity} and {p.layout.tag}",
        )
        return 0
    items = p.items if isinstance(p.items, Sequence) else p.spec.items()
    upto = None if p.cursor.finished else p.cursor.next_batch
    put = 0
    gate = p.gate
    for seq, chunk in p.source.user_batches(items, 0):
        if (upto is not None and seq >= upto) or p.stop.is_set():
            break
        if not request.missing(seq):
            continue
        if gate.budget <= 0:
            gate.retrying(functools.partial(gate.wait_below_high_water, p.identity))
            gate.refill()
            if gate.finished_early:
                break
        batch_id = p.layout.batch_id(seq)
        gate.retrying(functools.partial(p.putter.put_batch, batch_id, tuple(chunk), p.identity))
        crashpoint("producer.after_rebuild_put")
        gate.budget -= 1
        put += 1
    log.warning("rebuild_served", batches=put, covered=len(request.applied or ()))
    return put


def _request(p: Producer, wait: bool) -> RebuildRequest | None:
    tube = rebuild_tube(p.spec.name)
    said = False
    while not p.stop.is_set():
        job = p.gate.retrying(functools.partial(p.queue.peek_ready, tube))
        if job is not None:
            try:
                verify(p.opts.signer, job.body)
                return decode_request(job.body)
            except MalformedMessage as exc:
                p.gate.retrying(functools.partial(_bury, p.queue, job.id))
                log.error("rebuild_request_buried", job_id=job.id, reason=str(exc))
                continue
        if not wait:
            return None
        if not said:
            log.info("rebuild_awaited", hint="waiting for `beanmill reducer --rebuild`")
            said = True
        p.notifier.watchdog()
        p.stop.wait(POLL_S)
    return None


def _bury(queue: Queue, job_id: int) -> None:
    taken = queue.reserve_job(job_id)
    if taken is not None:
        queue.bury(taken)
