"""What the reducer's fold saw go by and never commits: duplicates dropped, and the hosts
that sent partials, for /metrics and the dashboard."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from beanmill.wire import Partial


@dataclass
class Sighting:
    """One host whose partials the reducer applied: what the dashboard lists as consumers."""

    first_seen: float
    last_seen: float
    items: int = 0

    @property
    def rate(self) -> float:
        span = self.last_seen - self.first_seen
        return self.items / span if span > 0 else 0.0


@dataclass
class Seen:
    """What the reducer's fold saw go by, never committed: duplicates dropped and the hosts
    that sent partials (partials carry a host, not a pid), since this reducer started."""

    duplicates: int = 0
    hosts: dict[str, Sighting] = field(default_factory=dict)

    def partials(self, partials: Sequence[Partial], new: Sequence[Partial]) -> None:
        self.duplicates += len(partials) - len(new)
        now = time.time()
        for p in new:
            if not p.host:  # the wire names the host only with failures or retries
                continue
            host = p.host
            sighting = self.hosts.get(host)
            if sighting is None:
                sighting = self.hosts[host] = Sighting(now, now)
            sighting.last_seen = now
            sighting.items += p.items
