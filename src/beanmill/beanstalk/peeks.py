"""What a queue reads without taking a job: peeks and tube statistics."""

from __future__ import annotations

from typing import Any

import greenstalk

from beanmill.beanstalk.link import Link, lost_on_error


class Peeks(Link):
    """Reads that leave the jobs where they are."""

    def peek_ready(self, tube: str) -> greenstalk.Job[bytes] | None:
        """The next ready job of `tube`, left where it is; None when there is none."""
        try:
            with lost_on_error(self.address):
                self.client.use(tube)
                self._using = tube
                job: greenstalk.Job[bytes] = self.client.peek_ready()
        except greenstalk.NotFoundError:
            return None
        return job

    def has_ready(self, tube: str) -> bool:
        return int(self.stats_tube(tube).get("current-jobs-ready", 0)) > 0

    def stats_tube(self, tube: str) -> dict[str, Any]:
        try:
            with lost_on_error(self.address):
                stats: dict[str, Any] = dict(self.client.stats_tube(tube))
        except greenstalk.NotFoundError:
            return {}
        return stats
