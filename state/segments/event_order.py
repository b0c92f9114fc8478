"""One canonical event-time order over all source partitions: Flink's watermark, made exact.

Online k-means depends on the order it sees points in. With several Bytewax workers the order
in which the one models worker receives updates is an accident of scheduling: sources race
each other through a backlog, and updates of one partition reach the models step through the
user-state step of whichever worker holds each user. Event time is not an accident, so the
segment model learns in (event time, user, version) order, and this class decides when an
item's place in that order is final.

Flink does it with watermarks that flow in-band and are merged as the minimum over input
channels. Bytewax carries no watermarks and cannot broadcast one to every worker, so the
progress travels with the data instead. Every batch a source partition emits has a `Stamp`
(partition, sequence number, size); every record of it reaches the models step exactly once,
either as an item to order or as a bare progress mark where a step dropped it (a dead letter,
a duplicate). So a partition's batches are known *complete*, whatever paths and workers their
records took, and complete batches are taken in sequence:

* each item of a batch gets the effective time ``max(ts, partition watermark before the
  batch)`` and waits in a heap; a partition's watermark is the newest event time of its
  complete batches minus `reorder_s` (the disorder allowed inside one partition);
* the global watermark is the minimum over active partitions (a partition never heard from
  counts, at minus infinity, so nothing moves until every partition has spoken), and items
  strictly before it are released in order: no later item can sort before them.

Everything here depends on the data and on each partition's batch boundaries, none of it on
timing, so one worker and several release the same items in the same order. Two things bend
that, both counted in `late`: a partition that announced itself idle (a live stream that ran
dry) and then resumes, and unstamped input (tests' in-memory sources), which is ordered by
the newest event time seen, as a plain reorder buffer. Partitions announce ``idle`` (left out
of the minimum until their next batch) and ``end`` with one-record batches of their own.

>>> order = EventTimeOrder[str](origins=("p0", "p1"))
>>> order.add(Stamp("p0", 0, 1), 10.0, [(("a", 1), "a@10")])
>>> order.release()  # p1 has not spoken: nothing is final yet
[]
>>> order.add(Stamp("p1", 0, 1), 5.0, [(("b", 1), "b@5")])
>>> order.release()  # the watermark is min(10, 5): only what is strictly before 5
[]
>>> order.add(Stamp("p1", 1, 1, END), None, [])
>>> order.release()  # p1 ended: p0's watermark (10) rules alone
['b@5']
>>> order.add(Stamp("p0", 1, 1, END), None, [])
>>> order.release()
['a@10']
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from tailor.state.crossing import crossing

__all__ = ["DATA", "END", "IDLE", "EventTimeOrder", "Held", "Stamp"]

T = TypeVar("T")

DATA, IDLE, END = "data", "idle", "end"
_ACTIVE, _IDLE, _ENDED = 0, 1, 2
#: An item taken out of an order: (partition, batch) when it waited in a batch still being
#: counted, else (None, None); then its effective time, key and value.
Held = tuple[str | None, int | None, float, Any, T]
#: The partition of unstamped input.
UNSTAMPED = ""


@crossing
@dataclass(frozen=True, slots=True)
class Stamp:
    """Where a record sits in its source partition's sequence of batches.

    `size` is the number of records in batch `seq`; `kind` is `DATA`, or `IDLE` / `END` for a
    partition's one-record announcements that it ran dry / finished.
    """

    origin: str
    seq: int
    size: int
    kind: str = DATA


@dataclass
class _Batch(Generic[T]):
    """A batch still being counted: its items wait here until every record is in."""

    size: int
    kind: str
    seen: int = 0
    newest: float = -math.inf
    items: list[tuple[float, Any, T]] = field(default_factory=list)


@dataclass
class _Partition(Generic[T]):
    next_seq: int = 0
    watermark: float = -math.inf
    status: int = _ACTIVE
    waiting: dict[int, _Batch[T]] = field(default_factory=dict)


class EventTimeOrder(Generic[T]):
    """Items in (effective event time, key) order, each released once its place is final.

    :arg origins: the source partitions to wait for; others are added when first seen.
    :arg reorder_s: event-time disorder allowed inside one partition.
    """

    def __init__(self, origins: Sequence[str] = (), reorder_s: float = 0.0) -> None:
        self.reorder_s = reorder_s
        self.partitions: dict[str, _Partition[T]] = {o: _Partition() for o in origins}
        self.heap: list[tuple[float, Any, int, T]] = []
        self.frontier = -math.inf  # effective time of the last item released
        self.late = 0  # items placed after their event time would have put them
        self.pushed = 0  # ties on (time, key) keep arrival order
        self._watermark: float | None = None  # cached `watermark()`

    def add(
        self,
        stamp: Stamp | None,
        ts: float | None,
        items: Iterable[tuple[Any, T]],
        moves: bool = True,
    ) -> None:
        """Account for one record of a batch, with the items (key, value) it brings.

        Every record of a stamped batch must be added exactly once, items or not. A record
        that does not `move` its partition's watermark (an aged profile: its time is the
        sweep's boundary, not an event's) is placed by its time like any other.
        """
        if stamp is None:
            self._add_unstamped(ts, items, moves)
            return
        part = self.partitions.get(stamp.origin)
        if part is None:
            part = self.partitions[stamp.origin] = _Partition()
            self._watermark = None
        if stamp.seq < part.next_seq:
            return  # a batch taken already (a re-delivery after recovery): counted once
        batch = part.waiting.get(stamp.seq)
        if batch is None:
            batch = part.waiting[stamp.seq] = _Batch(stamp.size, stamp.kind)
        batch.seen += 1
        if ts is not None:
            if moves and ts > batch.newest:
                batch.newest = ts
            held = batch.items
            for key, value in items:
                held.append((ts, key, value))
        if batch.seen >= batch.size and stamp.seq == part.next_seq:
            self._take_complete(part)

    def release(self) -> list[T]:
        """Items whose place is final, in order."""
        return self._pop_before(self.watermark())

    def flush(self) -> list[T]:
        """Everything still held, in order: the input has ended, nothing else can come."""
        for part in self.partitions.values():
            while part.waiting:
                self._take(part, min(part.waiting), force=True)
        return self._pop_before(math.inf)

    def discard(self, drop: Callable[[T], bool]) -> None:
        """Forget held items (erasure); a batch still counts their records."""
        kept = [entry for entry in self.heap if not drop(entry[3])]
        if len(kept) != len(self.heap):
            heapq.heapify(kept)
            self.heap = kept
        for part in self.partitions.values():
            for batch in part.waiting.values():
                batch.items = [item for item in batch.items if not drop(item[2])]

    def take(self, pick: Callable[[T], bool]) -> list[Held[T]]:
        """Remove the held items `pick` chooses and return them with where they waited, for
        `put` into another order over the same partitions (a replica rebuilt for another
        worker count, `tailor.flows.rescale`); their batches still count their records."""
        taken: list[Held[T]] = [
            (None, None, ts, key, value) for ts, key, _n, value in self.heap if pick(value)
        ]
        for origin, part in self.partitions.items():
            for seq, batch in part.waiting.items():
                taken += [(origin, seq, t, k, v) for t, k, v in batch.items if pick(v)]
        self.discard(pick)
        return taken

    def put(self, held: Iterable[Held[T]]) -> None:
        """Hold again what `take` returned: in its batch when that batch is still being
        counted here, else in the heap (released, late if need be, at the next `release`)."""
        for origin, seq, ts, key, value in held:
            part = self.partitions.get(origin) if origin is not None else None
            batch = part.waiting.get(seq) if part is not None and seq is not None else None
            if batch is not None:
                batch.items.append((ts, key, value))
            else:
                self._push(ts if part is None else max(ts, part.watermark), key, value)
                self._watermark = None

    def watermark(self) -> float:
        """The slowest active partition's watermark; +inf when none is active."""
        if self._watermark is None:  # recomputed only when a partition moved
            active = [p.watermark for p in self.partitions.values() if p.status == _ACTIVE]
            self._watermark = min(active, default=math.inf)
        return self._watermark

    @property
    def held(self) -> int:
        """Items waiting, in the heap or in batches still being counted."""
        waiting = sum(len(b.items) for p in self.partitions.values() for b in p.waiting.values())
        return len(self.heap) + waiting

    def _add_unstamped(
        self, ts: float | None, items: Iterable[tuple[Any, T]], moves: bool = True
    ) -> None:
        part = self.partitions.get(UNSTAMPED)
        if part is None:
            part = self.partitions[UNSTAMPED] = _Partition()
        if ts is None:
            return
        self._watermark = None
        for key, value in items:
            self._push(ts, key, value)
        # released up to and including newest - reorder_s, as a plain reorder buffer
        if moves:
            part.watermark = max(part.watermark, math.nextafter(ts - self.reorder_s, math.inf))

    def _take_complete(self, part: _Partition[T]) -> None:
        while True:
            batch = part.waiting.get(part.next_seq)
            if batch is None or batch.seen < batch.size:
                return
            self._take(part, part.next_seq, force=False)

    def _take(self, part: _Partition[T], seq: int, force: bool) -> None:
        """Move batch `seq` into the heap and advance its partition (in sequence order)."""
        batch = part.waiting.pop(seq)
        self._watermark = None
        floor = part.watermark
        for ts, key, value in batch.items:
            self._push(max(ts, floor), key, value)
        part.next_seq = seq + 1
        if batch.kind == IDLE:
            part.status = _IDLE
        elif batch.kind == END:
            part.status = _ENDED
        else:
            part.status = _ACTIVE
            part.watermark = max(part.watermark, batch.newest - self.reorder_s)
        if force:
            part.status = _ENDED

    def _push(self, ts: float, key: Any, value: T) -> None:
        if ts < self.frontier:
            self.late += 1
            ts = self.frontier
        self.pushed += 1
        heapq.heappush(self.heap, (ts, key, self.pushed, value))

    def _pop_before(self, watermark: float) -> list[T]:
        out: list[T] = []
        heap = self.heap
        while heap and heap[0][0] < watermark:
            ts, _key, _n, value = heapq.heappop(heap)
            self.frontier = ts
            out.append(value)
        return out

    def to_snapshot(self, item: Callable[[T], Any]) -> dict[str, Any]:
        """Plain data, each held item turned into plain data by `item`; the heap in its own
        (valid heap) order."""

        def batch(b: _Batch[T]) -> tuple[Any, ...]:
            return (b.size, b.kind, b.seen, b.newest, [(t, k, item(v)) for t, k, v in b.items])

        return {
            "reorder_s": self.reorder_s,
            "partitions": {
                origin: (
                    p.next_seq,
                    p.watermark,
                    p.status,
                    {s: batch(b) for s, b in p.waiting.items()},
                )
                for origin, p in self.partitions.items()
            },
            "heap": [(ts, key, n, item(value)) for ts, key, n, value in self.heap],
            "frontier": self.frontier,
            "late": self.late,
            "pushed": self.pushed,
        }

    @classmethod
    def from_snapshot(cls, data: Mapping[str, Any], item: Callable[[Any], T]) -> EventTimeOrder[T]:
        """The order `to_snapshot` gave, each held item rebuilt by `item`."""
        made = cls((), data["reorder_s"])
        for origin, (next_seq, watermark, status, waiting) in data["partitions"].items():
            made.partitions[origin] = _Partition(
                next_seq,
                watermark,
                status,
                {
                    seq: _Batch(size, kind, seen, newest, [(t, k, item(v)) for t, k, v in items])
                    for seq, (size, kind, seen, newest, items) in waiting.items()
                },
            )
        made.heap = [(ts, key, n, item(value)) for ts, key, n, value in data["heap"]]
        made.frontier, made.late, made.pushed = data["frontier"], data["late"], data["pushed"]
        return made
