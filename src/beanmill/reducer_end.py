"""How a reducer's job ends: the end conditions that stop it early, the `finished` record that
tells every host, and the state and exit code of a finished job."""

from __future__ import annotations

from pathlib import Path

import structlog

from beanmill import exitcodes
from beanmill.beanstalk.connection import Queue
from beanmill.checkpoint import Snapshot
from beanmill.control import finished_record
from beanmill.ending import Estimates, Estimator, StopRule
from beanmill.errors import QueueLost
from beanmill.jobspec import Progress, Spec
from beanmill.rebuild import finish_rebuild
from beanmill.signing import Signer, signed
from beanmill.wire import FinishedRecord, encode_finished

log = structlog.get_logger()


def early_stop(spec: Spec, rule: StopRule, snap: Snapshot, progress: Progress) -> str | None:
    """An end condition that holds now, for a job that is not finished already."""
    if snap.complete:
        return None
    reason = rule.reason(snap.items, snap.estimate)
    if reason is None and spec.done(snap.total, progress):
        reason = "done() returned true"
    return reason


def announce_finished(
    queue: Queue, spec: Spec, snap: Snapshot, signer: Signer | None, checkpoint: Path
) -> None:
    """Tell producers and consumers on every host, through the control tube, remove the item
    jobs an early stop left behind, and end a rebuild. Idempotent: repeated at every start."""
    reason = snap.stopped_because or "every batch applied"
    try:
        tube = spec.control_tube
        if finished_record(queue, tube, snap.identity, signer) is None:
            record = FinishedRecord(reason, snap.items, snap.identity)
            body = signed(signer, encode_finished(record))
            queue.put(spec.control_tube, body, ttr=60)
        finish_rebuild(queue, spec.name, checkpoint)
        if snap.stopped_because is not None:
            drained = queue.drain(spec.tubes[0])
            log.info("items_drained", jobs=drained, reason=reason)
    except QueueLost:
        log.warning("finished_not_announced", hint="the next reducer start announces it")


def state(snap: Snapshot) -> str:
    if snap.stopped_because is not None:
        return f"stopped early ({snap.stopped_because})"
    if snap.complete and snap.failed_items:
        return f"finished with {snap.failed_items:,} failed items"
    return "complete" if snap.complete else "stopped"


def exit_code(snap: Snapshot) -> int:
    """A finished job's code: failed items make `&& next_step` stop."""
    return exitcodes.FAILED_ITEMS if snap.failed_items else exitcodes.OK


def estimator(spec: Spec, population: int | None) -> Estimates | None:
    """The spec's reducer if it estimates; its population is filled in from len(items())."""
    reducer = spec.reducer
    if not isinstance(reducer, Estimates):
        return None
    if isinstance(reducer, Estimator) and reducer.population is None:
        reducer.population = population
    return reducer
