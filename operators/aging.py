"""The aging sweep step: ticks that re-evaluate users as the stream's clock moves on.

It sits on the events' path between validation and the user-state step, keyed by the worker
that reads each source partition (`sweep_key`), so it crosses no process. It passes every
record on and, when a source batch moves its worker's clock across an aging boundary
(`tailor.state.segments.aging.AgingSweep`), adds one `Tick` per user due, keyed by user like the
events after it: a user's ticks reach the user-state step in order with their events, with no
feedback edge and no loop through Redis.

Ticks become records of the batch that moved the clock: that batch's records are passed on
with a `Stamp` whose size counts the ticks too, so the models step's event-time order
(`tailor.state.segments.event_order`) counts each tick's result as it counts an event's, and places
the aged profile at the boundary in the order the segment model learns in. A batch is held until
every record of it has arrived (its accepted events and its refused ones come along two
branches), which happens within the epoch it was read in. The clock waits for every
partition this worker reads. A tick moves no clock downstream: its time is a boundary, not
an event's, so the models' event-time order places it without moving its partition's
watermark, and what the segment model learns, and in which order, is the same with aging on
or off.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import bytewax.operators as op
from bytewax.dataflow import Stream, operator
from bytewax.operators import StatefulBatchLogic

from tailor.operators.records import Accepted, Forget, Progress, Stamp, Tick
from tailor.operators.redis.routing import replica_keys, worker_of
from tailor.state import snapshots
from tailor.state.profile.event import Event
from tailor.state.segments.aging import ACTIVE, AgingSweep

__all__ = ["AgingParams", "SweepLogic", "aging_sweep", "dealt_keys"]

SweepIn = Accepted | Progress | Forget
SweepOut = Accepted | Progress | Forget | Tick


@dataclass(frozen=True)
class AgingParams:
    """`state.age_every_s`, `segments.reorder_s`, `state.ttl_s`, the worker count, and the
    stamping source's partitions (`tailor.flows.worker.stamped_origins`)."""

    every_s: float
    reorder_s: float
    ttl_s: float
    workers: int
    origins: tuple[str, ...] = ()


def dealt_keys(origins: Sequence[str], workers: int) -> dict[str, str]:
    """The sweep key of each partition: the replica key of the worker that reads it. Bytewax
    deals a source's partitions to workers in turn, in the sorted order of their names
    (`tailor.operators.redis.routing.readers`)."""
    keys = replica_keys(workers)
    return {origin: keys[rank % workers] for rank, origin in enumerate(sorted(origins))}


class SweepLogic(StatefulBatchLogic["SweepIn | ForgetHere", SweepOut, bytes]):
    """One worker's sweep: holds each stamped batch until it is whole, then passes it on with
    the ticks it made due."""

    def __init__(
        self,
        params: AgingParams,
        resume_state: bytes | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        settings = (params.every_s, params.reorder_s, params.ttl_s, clock)
        self.dealt = dealt_keys(params.origins, params.workers)
        self.held: dict[tuple[str, int], list[Accepted | Progress]] = {}
        if resume_state is None:
            self.sweep = AgingSweep(*settings)
            return
        data = snapshots.decode(resume_state, "sweep")
        self.sweep = AgingSweep.from_snapshot(data["sweep"], *settings)
        for key, records in data["held"]:
            self.held[(key[0], key[1])] = [_record(r) for r in records]

    def on_batch(self, values: list[SweepIn | ForgetHere]) -> tuple[Iterable[SweepOut], bool]:
        out: list[SweepOut] = []
        for value in values:
            if isinstance(value, ForgetHere):
                self.sweep.forget(value.user_id)
                continue
            if isinstance(value, Forget):
                self.sweep.forget(value.user_id)
                out.append(value)
                continue
            if value.stamp is None:
                out.append(value)
                if isinstance(value, Accepted):
                    out += self._unstamped(value)
                continue
            stamp = value.stamp
            if not self.sweep.partitions:
                self._wait_for_mine(stamp.origin)
            records = self.held.setdefault((stamp.origin, stamp.seq), [])
            records.append(value)
            if len(records) >= stamp.size:
                del self.held[(stamp.origin, stamp.seq)]
                out += self._whole(stamp, records)
        return out, StatefulBatchLogic.RETAIN

    def _wait_for_mine(self, origin: str) -> None:
        """The clock waits for every partition this worker reads, known from the first one
        (a logic does not know its key, but partitions are keyed by their reader)."""
        key = self.dealt.get(origin)
        for other, reader in self.dealt.items():
            if reader == key:
                self.sweep.partitions.setdefault(other, [-math.inf, ACTIVE])

    def _unstamped(self, value: Accepted) -> list[Tick]:
        event = value.event
        if event.consent is False:
            self.sweep.forget(event.user_id)
            return []
        return [Tick(user, at) for user, at in self.sweep.unstamped(event.user_id, event.ts)]

    def _whole(self, stamp: Stamp, records: list[Accepted | Progress]) -> list[SweepOut]:
        """The batch's records, then its ticks, all stamped with the batch's new size."""
        times = [_ts(r) for r in records]
        newest = max((t for t in times if t is not None), default=None)
        users = []
        for r in records:
            if isinstance(r, Accepted):
                if r.event.consent is False:
                    self.sweep.forget(r.event.user_id)
                else:
                    users.append((r.event.user_id, r.event.ts))
        due = self.sweep.batch(stamp.origin, stamp.kind, newest, users)
        if not due:
            return list(records)
        grown = dataclasses.replace(stamp, size=stamp.size + len(due))
        out: list[SweepOut] = [dataclasses.replace(r, stamp=grown) for r in records]
        out += [Tick(user, at, grown) for user, at in due]
        return out

    def snapshot(self) -> bytes:
        """Plain data in a versioned envelope (`tailor.state.snapshots`). Batches are whole within
        the epoch they were read in, so `held` is empty at an epoch's end but for a batch
        still arriving; it is kept all the same."""
        held = [(list(key), [_record_data(r) for r in rs]) for key, rs in self.held.items()]
        return snapshots.encode("sweep", {"sweep": self.sweep.to_snapshot(), "held": held})


def _ts(record: Accepted | Progress) -> float | None:
    return record.event.ts if isinstance(record, Accepted) else record.ts


def _record_data(r: Accepted | Progress) -> tuple[object, ...]:
    stamp = None if r.stamp is None else dataclasses.astuple(r.stamp)
    if isinstance(r, Progress):
        return ("progress", stamp, r.ts)
    event = tuple(getattr(r.event, f.name) for f in dataclasses.fields(Event))
    return ("accepted", stamp, event, r.read_at, r.origin, r.offset)


def _record(data: Sequence[object]) -> Accepted | Progress:
    stamp = None if data[1] is None else Stamp(*data[1])  # type: ignore[misc]
    if data[0] == "progress":
        return Progress(stamp, data[2])  # type: ignore[arg-type]
    event = Event(*data[2])  # type: ignore[misc]
    return Accepted(event, data[3], stamp, data[4], data[5])  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class ForgetHere:
    """A copy of an erasure for another worker's sweep: forget the user there, pass nothing
    on (a user routed by crc32 alone may be read on another worker than the one holding
    their key; the id must not stay in any sweep)."""

    user_id: str
    key: str


@operator
def aging_sweep(step_id: str, up: Stream[SweepIn], params: AgingParams) -> Stream[SweepOut]:
    """Pass the events' path on, with a `Tick` per user due at each aging boundary.

    :arg up: Accepted events, refused records' `Progress` and `Forget` requests, unkeyed.
    :arg params: The grid, the disorder allowed, the TTL, the workers and the partitions.
    :returns: The same records (restamped where their batch carries ticks) and the ticks.
    """
    dealt = dealt_keys(params.origins, params.workers)
    keys = replica_keys(params.workers)

    def copies(item: SweepIn) -> list[SweepIn | ForgetHere]:
        if not isinstance(item, Forget) or params.workers == 1:
            return [item]
        own = keys[worker_of(item.user_id, params.workers)]
        return [item, *(ForgetHere(item.user_id, key) for key in keys if key != own)]

    def key_of(item: SweepIn | ForgetHere) -> str:
        if isinstance(item, ForgetHere):
            return item.key
        if isinstance(item, Forget):
            return keys[worker_of(item.user_id, params.workers)]
        if item.stamp is not None and item.stamp.origin in dealt:
            return dealt[item.stamp.origin]
        user = item.event.user_id if isinstance(item, Accepted) else ""
        return keys[worker_of(user, params.workers)]

    def builder(resume_state: bytes | None) -> SweepLogic:
        return SweepLogic(params, resume_state)

    keyed = op.key_on("by_worker", op.flat_map("copies", up, copies), key_of)
    return op.key_rm("unkey", op.stateful_batch("sweep", keyed, builder))
