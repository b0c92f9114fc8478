"""When the models step publishes the lists for users without history, and as what records.

The lists (popular, trending, trending per segment, popular per category) live in the models
(`tailor.state.recs.fallbacks`); this is the cadence. A list that changed goes out at most once
per `recs.fallback_every_s` of wall clock (0: after every batch), and at the end of a bounded
input whatever the clock says, so a drained run leaves every list as of its last change.
What goes out does not depend on when: a list's version is its place in the learning order
and names one list, and the sink writes only a newer version.

Every model replica holds the lists, but the replicas learn in different orders (their
lists differ in float rounding and in which segment an event counted), so one replica, the
first (which also publishes segment news: `tailor.operators.replicas`), publishes them all;
the others only keep their changes from piling up. So each list has one writer, whose
versions only grow.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

from tailor.operators.records import FallbackList
from tailor.state.recs.live_recs import LiveRecs

__all__ = ["FallbackCadence"]


class FallbackCadence:
    """The published lists' clock: what is due now from `recs`, and when to wake for it.

    :arg length: `recs.fallback_length`, items per list.
    :arg every_s: `recs.fallback_every_s`, the least wall-clock time between two refreshes.
    """

    def __init__(self, length: int, every_s: float, clock: Callable[[], float] = time.time) -> None:
        self.length = length
        self.every_s = every_s
        self.clock = clock
        self.next_at = 0.0  # wall clock: not snapshotted, a resumed worker refreshes at once

    def due(
        self, recs: LiveRecs, publishes: bool | None, force: bool = False
    ) -> list[FallbackList]:
        """The lists changed since the last refresh, if one is due (or `force`d); a replica
        that does not publish (`publishes` False) drops them, one that does not know yet
        (None: resumed, before its first copy) keeps them."""
        if publishes is None or not recs.fallbacks.changed():
            return []
        now = self.clock()
        if not force and now < self.next_at:
            return []
        self.next_at = now + self.every_s
        if not publishes:
            recs.fallbacks.take(())
            return []
        return [
            FallbackList(kind, group, version, at, items)
            for (kind, group), version, at, items in recs.fallback_lists(self.length)
        ]

    def wake_at(self, recs: LiveRecs, publishes: bool | None) -> datetime | None:
        """When a refresh held back by the interval is due (None: nothing waits)."""
        if not publishes or self.every_s <= 0 or not recs.fallbacks.changed():
            return None
        return datetime.fromtimestamp(self.next_at, UTC)
