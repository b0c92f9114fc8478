"""Segment churn: how many users moved between cluster segments, per event-time hour.

A move is counted where it is decided, upstream of Redis: when a user's settled cluster
segment differs from their previous settled one (the user-keyed outputs step), at the event
time of the output that moved them. Settled segments reach that step in event-time order, so
the count does not depend on batching, on the worker count, or on a crash and resume. A user
the worker forgot (`state.ttl_s`) and who comes back later in another segment is not a move:
churn is a rate among the users the worker holds.

The counts of the last `HOURS` hours are kept per hour, so the result does not depend on the
order in which workers' moves arrive; a move older than that is dropped.

>>> churn = Churn()
>>> churn.add([10, 11, 11, 9])
>>> churn.report()
ChurnReport(hour=11, moves=2, previous_hour=10, previous_moves=1)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tailor.state.crossing import crossing

__all__ = ["HOURS", "Churn", "ChurnReport"]

#: Hours of counts kept behind the newest: a day's delay in arrival is still counted.
HOURS = 48


@crossing
@dataclass(frozen=True, slots=True)
class ChurnReport:
    """What is published (`{p}:segments:churn`): the newest hour's moves and the hour before."""

    hour: int
    moves: int
    previous_hour: int
    previous_moves: int


@dataclass
class Churn:
    """Moves per event-time hour (epoch hours), the last `HOURS` of them."""

    counts: dict[int, int] = field(default_factory=dict)

    def add(self, hours: Iterable[int]) -> None:
        """Count one move per entry of `hours`; drop hours behind the window."""
        for hour in hours:
            self.counts[hour] = self.counts.get(hour, 0) + 1
        if self.counts:
            oldest = max(self.counts) - HOURS + 1
            self.counts = {h: n for h, n in self.counts.items() if h >= oldest}

    def report(self) -> ChurnReport:
        """The newest hour with a move and the hour before it (0 when none moved then)."""
        hour = max(self.counts, default=-1)
        return ChurnReport(hour, self.counts.get(hour, 0), hour - 1, self.counts.get(hour - 1, 0))

    def to_snapshot(self) -> dict[str, Any]:
        """Plain data (`tailor.state.snapshots`): the counts as (hour, moves) pairs."""
        return {"counts": sorted(self.counts.items())}

    @classmethod
    def from_snapshot(cls, data: Mapping[str, Any]) -> Churn:
        return cls(counts={int(h): int(n) for h, n in data["counts"]})
