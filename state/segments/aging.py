"""Segments that age: which users to re-evaluate, and when, as the stream's clock moves.

A profile, its RFM tier and its segment are otherwise computed only at the user's events, so
a customer who never comes back stays a "champion" for ever. Flink would arm a per-user
event-time timer; the boundaries that matter here are not the user's own (an RFM tier moves
when everyone else's values move the quintile cut points), so a worker sweeps every user it
holds each time the event-time clock crosses a boundary of a fixed grid (`every_s`, a UTC
day by default): per-user timers miss those moves. The comparison of sweeps and timers is in
docs/design/segments-that-age.md; why daily: docs/decisions/0011-segments-age-daily.md.

The clock is a watermark over the source partitions this worker reads: each partition's
newest event time (of the batches seen whole) minus `reorder_s`, the minimum over active
partitions; idle ones (a live stream that ran dry) and ended ones are left out, and when none
is active the clock is the newest of them. Users are routed to partitions their own worker
reads, so no event of a user held here can come from elsewhere.

A user is due at a boundary when their newest event is older. A user whose event arrives
after the clock crossed a boundary it is older than is due at once, so each user ends aged
to the last boundary crossed after their last event, whatever the interleaving of
partitions: the stored profiles of a replay do not depend on timing.

>>> sweep = AgingSweep(every_s=10.0)
>>> sweep.batch("p0", "data", 4.0, [("a", 3.0), ("b", 4.0)])
[]
>>> sweep.batch("p0", "data", 12.0, [("b", 12.0)])  # the clock crossed 10: a is older
[('a', 10.0)]
>>> sweep.batch("p0", "data", 13.0, [("c", 9.0)])  # c arrived behind the boundary
[('c', 10.0)]
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["ACTIVE", "AgingSweep"]

#: A partition's status, as its batches say (`tailor.state.segments.event_order`'s kinds).
ACTIVE, IDLE, ENDED = "data", "idle", "end"


class AgingSweep:
    """One worker's users and clock; `batch` and `unstamped` return the users due.

    :arg every_s: The grid of boundaries (multiples of it since the epoch).
    :arg reorder_s: Event-time disorder allowed inside a partition (`segments.reorder_s`).
    :arg ttl_s: A user unseen this long in processing time is forgotten, as the user-state
        step forgets them (`state.ttl_s`; 0 keeps every user).
    :arg origins: The partitions this worker reads: the clock waits until each has spoken.
    """

    def __init__(
        self,
        every_s: float,
        reorder_s: float = 0.0,
        ttl_s: float = 0.0,
        clock: Callable[[], float] = time.time,
        origins: Iterable[str] = (),
    ) -> None:
        if every_s <= 0:
            raise ValueError(f"every_s must be positive, got {every_s}")
        self.every_s = every_s
        self.reorder_s = reorder_s
        self.ttl_s = ttl_s
        self.clock = clock
        #: user -> (newest event time, processing time last seen, partition of that event)
        self.users: dict[str, tuple[float, float, str]] = {}
        #: partition -> [watermark, status]
        self.partitions: dict[str, list[Any]] = {o: [-math.inf, ACTIVE] for o in origins}
        self.boundary = -math.inf  # the last boundary crossed

    def batch(
        self, origin: str, kind: str, newest: float | None, users: Iterable[tuple[str, float]]
    ) -> list[tuple[str, float]]:
        """A source batch seen whole: its partition, kind, newest event time and the (user,
        event time) of its events. Returns the (user, boundary) pairs now due, by user."""
        seen = self._see(origin, users)
        part = self.partitions.setdefault(origin, [-math.inf, ACTIVE])
        part[1] = kind
        if kind == ACTIVE and newest is not None:
            part[0] = max(part[0], newest - self.reorder_s)
        return self._due(seen)

    def unstamped(self, user: str, ts: float) -> list[tuple[str, float]]:
        """An event with no place in a partition's batches (in-memory test sources): the
        clock follows the newest such event."""
        seen = self._see("", [(user, ts)])
        part = self.partitions.setdefault("", [-math.inf, ACTIVE])
        part[0] = max(part[0], ts - self.reorder_s)
        return self._due(seen)

    def forget(self, user: str) -> None:
        """Erasure: the user id is kept nowhere."""
        self.users.pop(user, None)

    def clock_now(self) -> float:
        """The event-time clock: see the module docstring."""
        marks = [mark for mark, status in self.partitions.values() if status == ACTIVE]
        if not marks:
            marks = [mark for mark, _ in self.partitions.values()]
        return min(marks) if marks else -math.inf

    def _see(self, origin: str, users: Iterable[tuple[str, float]]) -> list[str]:
        now = self.clock()
        seen = []
        for user, ts in users:
            newest = self.users.get(user, (-math.inf, 0.0, origin))[0]
            self.users[user] = (max(newest, ts), now, origin)
            seen.append(user)
        return seen

    def _due(self, seen: list[str]) -> list[tuple[str, float]]:
        clock = self.clock_now()
        boundary = math.floor(clock / self.every_s) * self.every_s if clock > -math.inf else clock
        if boundary > self.boundary:
            self.boundary = boundary
            self._expire()
            return [(user, boundary) for user in sorted(self._older(self.users, boundary))]
        behind = {user for user in seen if self.users[user][0] < self.boundary}
        return [(user, self.boundary) for user in sorted(behind)]

    @staticmethod
    def _older(users: Mapping[str, tuple[float, float, str]], boundary: float) -> list[str]:
        return [user for user, (newest, *_) in users.items() if newest < boundary]

    def _expire(self) -> None:
        if self.ttl_s <= 0:
            return
        horizon = self.clock() - self.ttl_s
        for user in [u for u, (_, last, _o) in self.users.items() if last < horizon]:
            del self.users[user]

    def to_snapshot(self) -> dict[str, Any]:
        """Plain data; the settings are the caller's configuration."""
        return {
            "users": dict(self.users),
            "partitions": {origin: tuple(part) for origin, part in self.partitions.items()},
            "boundary": self.boundary,
        }

    @classmethod
    def from_snapshot(
        cls,
        data: Mapping[str, Any],
        every_s: float,
        reorder_s: float = 0.0,
        ttl_s: float = 0.0,
        clock: Callable[[], float] = time.time,
    ) -> AgingSweep:
        made = cls(every_s, reorder_s, ttl_s, clock)
        made.users = {user: (e[0], e[1], e[2]) for user, e in data["users"].items()}
        made.partitions = {origin: list(part) for origin, part in data["partitions"].items()}
        made.boundary = data["boundary"]
        return made


def redistribute(
    sweeps: Iterable[Mapping[str, Any]], key_of: Callable[[str], str]
) -> dict[str, dict[str, Any]]:
    """Sweeps' snapshots for another worker count (`tailor.flows.rescale`): every user and partition
    goes to the sweep of the worker that reads the partition now (`key_of(origin)`); each
    new sweep starts from the earliest boundary any old one crossed, so no boundary is
    skipped (one crossed twice re-sends what the sink already holds, which it ignores)."""
    sweeps = list(sweeps)
    boundary = min((s["boundary"] for s in sweeps), default=-math.inf)
    out: dict[str, dict[str, Any]] = {}

    def part(origin: str) -> dict[str, Any]:
        return out.setdefault(key_of(origin), {"users": {}, "partitions": {}, "boundary": boundary})

    for sweep in sweeps:
        for origin, (mark, status) in sweep["partitions"].items():
            known = part(origin)["partitions"].get(origin)
            if known is None or mark > known[0]:
                part(origin)["partitions"][origin] = (mark, status)
        for user, (newest, seen, origin) in sweep["users"].items():
            users = part(origin)["users"]
            if user not in users or newest > users[user][0]:
                users[user] = (newest, seen, origin)
    return out
