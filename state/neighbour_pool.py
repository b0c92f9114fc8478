"""Every item's co-occurrence neighbours packed in one pool, learned by a compiled step (numba).

Why packed: one object per item row (a dict of slots and two arrays) meant tens of thousands
of objects the garbage collector walks (full collections of 74-93 ms on MovieLens), a
snapshot that gathers ten thousand small arrays (22 ms an epoch), and learning in Python,
which every model replica pays again for every other worker's events. Here a row's neighbour
rows and counts are a region of two big arrays (`offset`, `size`, `capacity` per row); a row
that outgrows its region moves to one twice as large at the end of the pool, and the holes
left behind go whenever the pool runs out of room (every region is copied into new arrays
twice as long as the regions take).

Why compiled: learning an event is ~20 small updates (the item's row gains the recent items,
each recent item's row gains the item), each a short scan of a region; as numba loops the
whole event, or a remote batch of them, is one call instead of ~20 dict and array operations
in Python (`benchmarks/cooc_store.py`). The compiled code is cached beside this file.

The semantics are those of the per-row objects, exactly (`tests/state/cooc_reference.py`):
slots in order of first pairing, a removed neighbour's slot filled by the last one, and a row
pruned to `keep` neighbours by (count desc, item id asc) as soon as it passes `limit`. The
pruning stays in numpy and Python, because its tie-break compares item ids as strings: the
step stops after an event that leaves a row past `limit`, the row is pruned, and the step
goes on from the next event, so a batch is pruned exactly where one-by-one learning would.

>>> pool = NeighbourPool(max_size=6)
>>> pool.reserve_rows(4)
>>> totals = np.zeros(4, np.int64)
>>> pool.learn([2], [1], [0, 2], [0, 1], totals, limit=4, keep=2, name=str)
>>> [pool.view(row)[0].tolist() for row in range(3)], totals.tolist()
([[2], [2], [0, 1]], [0, 0, 1, 0])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numba
import numpy as np
import numpy.typing as npt

__all__ = ["NeighbourPool"]

IntArray = npt.NDArray[np.int64]

#: A row's first region, in slots; it doubles from there, up to the largest a row can get.
INITIAL = 8
#: The pool's first length, in slots.
MIN_POOL = 1024
_DONE, _PRUNE, _ROOM = 0, 1, 2


@numba.njit(cache=True, nogil=True)
def _grown(capacity: int, needed: int, max_size: int) -> int:
    """A moved row's new region: twice the old one (at least `INITIAL`), but no more than a
    row can ever hold, and at least `needed`."""
    return max(needed, INITIAL, min(2 * capacity, max_size))


@numba.njit(cache=True, nogil=True)
def _move(rows: Any, counts: Any, offset: Any, size: Any, capacity: Any, row: int, needed: int,
          end: int, max_size: int) -> int:  # fmt: skip
    """Move `row` to a new region at `end` (the caller checked there is room); the new end."""
    start, n = offset[row], size[row]
    rows[end : end + n] = rows[start : start + n]
    counts[end : end + n] = counts[start : start + n]
    offset[row] = end
    capacity[row] = _grown(capacity[row], needed, max_size)
    return end + capacity[row]


@numba.njit(cache=True, nogil=True)
def _learn(rows: Any, counts: Any, offset: Any, size: Any, capacity: Any, end: int,
           max_size: int, totals: Any, marks: Any, items: Any, weights: Any, starts: Any,
           others: Any, first: int, limit: int) -> tuple[int, int, int, Any]:  # fmt: skip
    """Learn events `first`, `first + 1`, ... until done, or until one leaves rows past
    `limit` (status `_PRUNE`: the next event and the rows), or until the next event might
    not fit in the pool (status `_ROOM`: that event, untouched, and the room it may need).

    Event e: `totals[items[e]] += weights[e]`, and the item paired both ways with each
    distinct row of `others[starts[e]:starts[e + 1]]` but itself, first occurrence first.
    `marks` (one per row, all zero between calls) numbers the event's rows while it runs.
    """
    longest = 0
    for e in range(first, items.shape[0]):
        longest = max(longest, starts[e + 1] - starts[e])
    paired = np.empty(longest, np.int64)
    flagged = np.empty(longest + 1, np.int64)
    pool_len = rows.shape[0]
    for e in range(first, items.shape[0]):
        item, weight = items[e], weights[e]
        marks[item] = -1
        k = 0
        for j in range(starts[e], starts[e + 1]):
            if marks[others[j]] == 0:
                paired[k] = others[j]
                k += 1
                marks[others[j]] = k
        need = 0  # at most: every paired row new to the item's region, the item new to theirs
        if size[item] + k > capacity[item]:
            need += _grown(capacity[item], size[item] + k, max_size)
        for j in range(k):
            if size[paired[j]] + 1 > capacity[paired[j]]:
                need += _grown(capacity[paired[j]], size[paired[j]] + 1, max_size)
        if end + need > pool_len:
            marks[item] = 0
            for j in range(k):
                marks[paired[j]] = 0
            return _ROOM, e, end, np.full(1, need, np.int64)
        totals[item] += weight
        start, n = offset[item], size[item]
        for slot in range(start, start + n):  # the item's known neighbours: unmarked
            if marks[rows[slot]] > 0:
                counts[slot] += weight
                marks[rows[slot]] = 0
        new = 0
        for j in range(k):
            new += marks[paired[j]] > 0
        if n + new > capacity[item]:
            end = _move(rows, counts, offset, size, capacity, item, n + new, end, max_size)
        start = offset[item]
        for j in range(k):
            if marks[paired[j]] > 0:
                rows[start + n], counts[start + n] = paired[j], weight
                n += 1
            marks[paired[j]] = 0
        size[item] = n
        marks[item] = 0
        n_flagged = 0
        for j in range(k):
            other = paired[j]
            start, n = offset[other], size[other]
            slot = start
            while slot < start + n and rows[slot] != item:
                slot += 1
            if slot < start + n:
                counts[slot] += weight
            else:
                if n + 1 > capacity[other]:
                    end = _move(rows, counts, offset, size, capacity, other, n + 1, end, max_size)
                    slot = offset[other] + n
                rows[slot], counts[slot] = item, weight
                size[other] = n + 1
            if size[other] > limit:
                flagged[n_flagged] = other
                n_flagged += 1
        if size[item] > limit:
            flagged[n_flagged] = item
            n_flagged += 1
        if n_flagged:
            return _PRUNE, e + 1, end, flagged[:n_flagged]
    return _DONE, items.shape[0], end, flagged[:0]


@numba.njit(cache=True, nogil=True)
def _subtract(rows: Any, counts: Any, offset: Any, size: Any, row: int, other: int,
              weight: int) -> None:  # fmt: skip
    """Take `weight` pairings with `other` from `row`; at zero the last slot fills its place."""
    start, n = offset[row], size[row]
    for slot in range(start, start + n):
        if rows[slot] == other:
            left = counts[slot] - weight
            if left > 0:
                counts[slot] = left
                return
            last = start + n - 1
            rows[slot], counts[slot] = rows[last], counts[last]
            size[row] = n - 1
            return


@numba.njit(cache=True, nogil=True)
def _lookup(rows: Any, counts: Any, offset: Any, size: Any, sources: Any, targets: Any) -> Any:
    """Pairings of each source row (rows of the result) with each target row (columns)."""
    out = np.zeros((sources.shape[0], targets.shape[0]), np.int64)
    for i in range(sources.shape[0]):
        start, n = offset[sources[i]], size[sources[i]]
        for slot in range(start, start + n):
            for j in range(targets.shape[0]):
                if rows[slot] == targets[j]:
                    out[i, j] = counts[slot]
    return out


@numba.njit(cache=True, nogil=True)
def _gather(pool: Any, offset: Any, size: Any, n_rows: int, out: Any) -> None:
    """Rows 0..n_rows-1's regions end to end into `out` (of the snapshot's integer type)."""
    at = 0
    for row in range(n_rows):
        start = offset[row]
        for slot in range(start, start + size[row]):
            out[at] = pool[slot]
            at += 1


@numba.njit(cache=True, nogil=True)
def _compact(rows: Any, counts: Any, new_rows: Any, new_counts: Any, offset: Any, size: Any,
             capacity: Any) -> int:  # fmt: skip
    """Every row's region copied into the new arrays, in row order, no holes; the new end."""
    end = 0
    for row in range(offset.shape[0]):
        start, n = offset[row], size[row]
        new_rows[end : end + n] = rows[start : start + n]
        new_counts[end : end + n] = counts[start : start + n]
        offset[row] = end
        end += capacity[row]
    return end


class NeighbourPool:
    """Per row (an item's row in `CoOccurrence`), its neighbours' rows and counts as a region
    of `rows` and `counts`, slots in order of first pairing.

    `max_size` is the most a row can hold (`limit` plus one event's pairs): regions never
    grow past it. `view` is two slices of the pool, valid until the next change (growing
    or compacting makes new arrays, so a view still held keeps its memory).
    """

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self.rows: IntArray = np.zeros(MIN_POOL, np.int64)
        self.counts: IntArray = np.zeros(MIN_POOL, np.int64)
        self.end = 0  # first slot no region holds
        self.offset: IntArray = np.zeros(0, np.int64)
        self.size: IntArray = np.zeros(0, np.int64)
        self.capacity: IntArray = np.zeros(0, np.int64)
        self._marks: IntArray = np.zeros(0, np.int64)

    def reserve_rows(self, n: int) -> None:
        """Room for rows 0..n-1 (a new row has no region until its first neighbour)."""
        extra = n - len(self.size)
        if extra > 0:
            zeros = np.zeros(extra, np.int64)
            self.offset = np.concatenate([self.offset, zeros])
            self.size = np.concatenate([self.size, zeros])
            self.capacity = np.concatenate([self.capacity, zeros])
            self._marks = np.concatenate([self._marks, zeros])

    def learn(
        self,
        items: Sequence[int] | IntArray,
        weights: Sequence[int] | IntArray,
        starts: Sequence[int] | IntArray,
        others: Sequence[int] | IntArray,
        totals: IntArray,
        limit: int,
        keep: int,
        name: Callable[[int], str],
    ) -> None:
        """Learn the events in order (see `_learn`), pruning to `keep` (ties to the smaller
        `name(row)`) every row an event leaves past `limit`, right after that event."""
        item_rows, item_weights = np.asarray(items, np.int64), np.asarray(weights, np.int64)
        bounds, paired = np.asarray(starts, np.int64), np.asarray(others, np.int64)
        first = 0
        while True:
            status, first, self.end, rows = _learn(
                self.rows, self.counts, self.offset, self.size, self.capacity, self.end,
                self.max_size, totals, self._marks, item_rows, item_weights, bounds, paired,
                first, limit,
            )  # fmt: skip
            if status == _DONE:
                return
            if status == _ROOM:
                self._make_room(int(rows[0]))
            else:
                for row in rows.tolist():
                    self.prune(row, keep, name)

    def prune(self, row: int, keep: int, name: Callable[[int], str]) -> None:
        """Keep the `keep` largest counts; ties at the cut-off go to the smaller `name(row)`.
        Deterministic whatever the insertion order, so replays prune alike."""
        rows, counts = self.view(row)
        if len(rows) <= keep:
            return
        cutoff = np.partition(counts, len(counts) - keep)[len(counts) - keep]
        above = np.flatnonzero(counts > cutoff)
        tied = np.flatnonzero(counts == cutoff)
        wanted = keep - len(above)  # 1..len(tied): the cut-off is the keep-th largest count
        if wanted < len(tied):  # names are distinct: the order of the smallest is total
            named = rows[tied].tolist()
            order = sorted(range(len(named)), key=lambda j: name(named[j]))[:wanted]
            tied = tied[order]
        chosen = np.concatenate([above, tied])
        chosen.sort()  # keep slots in their first-pairing order
        n = len(chosen)
        rows[:n], counts[:n] = rows[chosen], counts[chosen]  # fancy indexing copies first
        self.size[row] = n

    def subtract(self, row: int, other: int, weight: int) -> None:
        """Take back `weight` pairings of `row` with `other`; at zero the neighbour goes."""
        _subtract(self.rows, self.counts, self.offset, self.size, row, other, weight)

    def clear(self, row: int) -> None:
        """`row` has no neighbours (its region stays for the next ones)."""
        self.size[row] = 0

    def count(self, row: int, other: int) -> int:
        """Pairings of `row` with `other` (0 when none, or pruned)."""
        return int(self.lookup([row], [other])[0, 0])

    def lookup(self, sources: Sequence[int], targets: Sequence[int]) -> IntArray:
        """Pairings of each of `sources` (result rows) with each of `targets` (columns)."""
        found: IntArray = _lookup(
            self.rows, self.counts, self.offset, self.size,
            np.asarray(sources, np.int64), np.asarray(targets, np.int64),
        )  # fmt: skip
        return found

    def view(self, row: int) -> tuple[IntArray, IntArray]:
        """(rows, counts) of every neighbour of `row`: slices of the pool, no copy."""
        start = int(self.offset[row])
        stop = start + int(self.size[row])
        return self.rows[start:stop], self.counts[start:stop]

    def packed(self, n_rows: int, dtype: type[np.signedinteger[Any]]) -> tuple[IntArray, ...]:
        """(sizes, rows, counts) of rows 0..n_rows-1, their regions end to end in `dtype`."""
        sizes = self.size[:n_rows].copy()
        total = int(sizes.sum())
        rows, counts = np.empty(total, dtype), np.empty(total, dtype)
        _gather(self.rows, self.offset, self.size, n_rows, rows)
        _gather(self.counts, self.offset, self.size, n_rows, counts)
        return sizes, rows, counts

    @classmethod
    def of(
        cls, max_size: int, n_rows: int, sizes: IntArray, rows: IntArray, counts: IntArray
    ) -> NeighbourPool:
        """A pool whose first `len(sizes)` rows have these regions end to end (`packed`)."""
        made = cls(max_size)
        made.reserve_rows(n_rows)
        sizes = np.asarray(sizes, np.int64)
        n = len(sizes)
        powers = 2 ** np.ceil(np.log2(np.maximum(sizes, 1))).astype(np.int64)
        room = np.maximum(sizes, np.minimum(np.maximum(powers, INITIAL), max_size))
        made.capacity[:n] = np.where(sizes > 0, room, 0)
        made.size[:n] = sizes
        made.offset[:n] = np.cumsum(made.capacity[:n]) - made.capacity[:n]
        made.end = int(made.capacity[:n].sum())
        length = max(MIN_POOL, 2 * made.end)
        made.rows, made.counts = np.zeros(length, np.int64), np.zeros(length, np.int64)
        where = np.repeat(made.offset[:n] - (np.cumsum(sizes) - sizes), sizes)
        where += np.arange(len(where))
        made.rows[where] = np.asarray(rows)
        made.counts[where] = np.asarray(counts)
        return made

    def _make_room(self, need: int) -> None:
        """At least `need` free slots at the end: every region copied, without the holes
        rows left when they moved, into arrays twice what the regions and `need` take (as
        cheap as copying into longer arrays, so there is no bound below which holes stay)."""
        live = int(self.capacity.sum())
        length = max(MIN_POOL, 2 * (live + need))
        rows, counts = np.zeros(length, np.int64), np.zeros(length, np.int64)
        self.end = _compact(
            self.rows, self.counts, rows, counts, self.offset, self.size, self.capacity
        )
        self.rows, self.counts = rows, counts
