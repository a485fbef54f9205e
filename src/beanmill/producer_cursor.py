"""The producer's cursor through a run: resumed, or made with the job's identity before any put,
then advanced after each group's puts and saved at most every CURSOR_EVERY_S, always after the
puts it counts (a crash between re-puts them: duplicates, never a gap)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from beanmill.crashpoint import crashpoint
from beanmill.cursor import Cursor, check_population, check_resumable, save_cursor
from beanmill.identity import Population, job_tag, new_run_id
from beanmill.ids import Layout
from beanmill.jobspec import Spec
from beanmill.putahead import Group, items_in

CURSOR_EVERY_S = 1.0


class CursorKeeper:
    """Opens the cursor of `state` for a spec and layout, and writes it when it is due."""

    def __init__(self, spec: Spec, layout: Layout, state: Path) -> None:
        self.spec, self.layout, self.state = spec, layout, state
        self.last_save = 0.0

    def open(self, saved: Cursor | None, population: Population | None) -> Cursor:
        """The saved cursor if it fits this run, else a new job's, saved before any put so a
        restart finds the same identity; refused if the layout or the population changed."""
        wanted = Cursor(
            job=self.spec.name,
            batch_size=self.layout.batch_size,
            order=self.layout.order,
            seed=self.layout.seed,
        )
        cursor = saved or self._new_job(wanted, population)
        if saved is None:
            save_cursor(self.state, cursor)
        check_resumable(cursor, wanted, self.state)
        check_population(cursor, population, self.state)
        if not cursor.identity:  # a cursor from before identities: give it one now
            tag = job_tag(self.spec.name, self.spec.version, self.layout.tag, None, "")
            cursor = replace(cursor, identity=tag)
        return cursor

    def _new_job(self, wanted: Cursor, population: Population | None) -> Cursor:
        run = new_run_id()
        tag = job_tag(self.spec.name, self.spec.version, self.layout.tag, population, run)
        return replace(
            wanted,
            identity=tag,
            run=run,
            population_size=population.size if population else None,
            population_digest=population.digest if population else None,
        )

    def after_put(
        self, cursor: Cursor, group: Group, jobs: int, digest: str | None, now: float
    ) -> Cursor:
        """The cursor past a group that is on the queue (`jobs` put for it), saved if it is
        CURSOR_EVERY_S since the last save."""
        cursor = replace(
            cursor,
            next_batch=group[-1][0] + 1,
            items_put=cursor.items_put + items_in(group),
            jobs_put=cursor.jobs_put + jobs,
            stream_digest=digest,
        )
        if now - self.last_save >= CURSOR_EVERY_S:
            save_cursor(self.state, cursor)
            crashpoint("producer.after_cursor")
            self.last_save = now
        return cursor
