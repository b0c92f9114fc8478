"""Every item's co-occurrence neighbours packed in one pool, learned by a compiled step (numba).

Why packed: one object per item row (a dict of slots and two arrays) meant tens of thousands
of objects the garbage collector walks, a snapshot that gathers ten thousand small arrays
every epoch, and learning in Python, which every model replica pays again for every other
worker's events (figures: docs/decisions/0007-packed-cooccurrence.md). Here a row's neighbour
rows and counts are a region of two big arrays (`offset`, `size`, `capacity` per row); a row
that outgrows its region moves to one twice as large at the end of the pool, and the holes
left behind go whenever the pool runs out of room (every region is copied into new arrays
twice as long as the regions take).

Why compiled: learning an event is ~20 small updates, each a short scan of a region; one
numba call learns an event, or a remote batch of them (`tailor.state.recs.neighbour_kernels`),
instead of ~20 dict and array operations in Python (decision 0007).

The semantics are those of the per-row objects, exactly (`tests/state/cooc_reference.py`):
slots in order of first pairing, a removed neighbour's slot filled by the last one, and a row
pruned to `keep` neighbours by (count desc, item id asc) as soon as it passes `limit`. The
pruning stays in numpy and Python, because its tie-break compares item ids as strings: the
step stops after an event that leaves a row past `limit`, the row is pruned, and the step
goes on from the next event, so a batch is pruned exactly where one-by-one learning would.

>>> pool = NeighbourPool(max_size=6)
>>> pool.reserve_rows(4)
>>> pool.learn(flat_events([2], [1], [[0, 1]]), 1, limit=4, keep=2, name=str)
>>> [pool.view(row)[0].tolist() for row in range(3)], pool.totals[:4].tolist()
([[2], [2], [0, 1]], [0, 0, 1, 0])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from tailor.state.recs import neighbour_kernels as kernels
from tailor.state.recs.neighbour_kernels import (
    CAPACITY,
    END,
    FLAGGED,
    GEN,
    HEADER,
    INITIAL,
    META_ROWS,
    NEED,
    NEIGHBOUR,
    NEXT,
    OFFSET,
    SHIFT,
    SIZE,
    STAMP,
    TOTAL,
)

__all__ = ["NeighbourPool", "flat_events"]

IntArray = npt.NDArray[np.int64]

#: The pool's first length, in slots.
MIN_POOL = 1024
#: The last generation a slot's stamp can hold.
MAX_GENERATION = (1 << (63 - SHIFT)) - 1


def flat_events(
    items: Sequence[int], weights: Sequence[int], paired: Sequence[Sequence[int]]
) -> IntArray:
    """Events as `NeighbourPool.learn` takes them: items, weights, bounds, paired rows."""
    bounds = np.cumsum([0, *map(len, paired)]).tolist()
    flat = [row for rows in paired for row in rows]
    return np.array([*items, *weights, *bounds, *flat], np.int64)


class NeighbourPool:
    """Per row (an item's row in `CoOccurrence`), its neighbours' rows and counts as a region
    of `rows` and `counts`, slots in order of first pairing; and the row's own count
    (`totals`), which the compiled step updates in the same call.

    `max_size` is the most a row can hold (`limit` plus one event's pairs): regions never
    grow past it. `view`'s counts are a slice of the pool, valid until the next change
    (growing or compacting makes new arrays, so a view still held keeps its memory).

    Every write stamps the current `generation` on the slots it writes (in the word of a
    slot's neighbour: `words`, `slot_stamps`) and on the row (`row_stamps`: its size, total or
    a slot changed); `mark` starts the next generation, so what changed since is what is
    stamped after it (`tailor.state.recs.neighbour_changes`). A new pool, or one made `of` a
    snapshot, is at generation 0 with every stamp 0.
    """

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self._set_pool(np.zeros((2, MIN_POOL), np.int64))
        self._set_meta(np.zeros((META_ROWS, 0), np.int64))
        self._work: IntArray = np.zeros(HEADER + 64, np.int64)

    @property
    def end(self) -> int:
        """The first slot no region holds."""
        return int(self._work[END])

    @property
    def generation(self) -> int:
        """The stamp writes carry now."""
        return int(self._work[GEN])

    def mark(self) -> int:
        """The current generation; writes from now on carry the next one."""
        if self._work[GEN] >= MAX_GENERATION:
            raise OverflowError("a slot's stamp has no room for another generation")
        self._work[GEN] += 1
        return int(self._work[GEN]) - 1

    def reserve_rows(self, n: int) -> None:
        """Room for rows 0..n-1 (a new row has no region until its first neighbour)."""
        extra = n - self.meta.shape[1]
        if extra > 0:
            more = np.zeros((META_ROWS, extra), np.int64)
            self._set_meta(np.concatenate([self.meta, more], axis=1))

    def learn(
        self, events: IntArray, n_events: int, limit: int, keep: int, name: Callable[[int], str]
    ) -> None:
        """Learn the events in order (`flat_events`, `kernels.learn`), pruning to `keep` (ties
        to the smaller `name(row)`) every row an event leaves past `limit`, right after it."""
        first, work = 0, self._work
        while True:
            status = kernels.learn(
                self.pool, self.meta, work, events, n_events, first, limit, self.max_size
            )
            if status == kernels.DONE:
                return
            first = int(work[NEXT])
            if status == kernels.PRUNE:
                for row in work[HEADER : HEADER + work[FLAGGED]].tolist():
                    self.prune(row, keep, name)
            elif status == kernels.ROOM:
                self._make_room(int(work[NEED]))
            else:  # a longer history than any before: more scratch
                longer = np.zeros(2 * int(work[NEED]), np.int64)
                longer[:HEADER] = work[:HEADER]  # the end and the generation
                work = self._work = longer

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
            named = list(map(name, rows[tied].tolist()))
            tied = tied[sorted(range(len(named)), key=named.__getitem__)[:wanted]]
        chosen = np.concatenate([above, tied])
        chosen.sort()  # keep slots in their first-pairing order
        n = len(chosen)
        start = int(self.offset[row])
        words = self.words[start : start + len(rows)]
        words[:n], counts[:n] = words[chosen], counts[chosen]  # fancy indexing copies first
        moved = np.flatnonzero(chosen != np.arange(n))  # slots kept in place keep their stamp
        words[moved] = (words[moved] & NEIGHBOUR) | (self._work[GEN] << SHIFT)
        self.size[row] = n
        self.row_stamps[row] = self._work[GEN]

    def subtract(self, row: int, other: int, weight: int) -> None:
        """Take back `weight` pairings of `row` with `other`; at zero the neighbour goes."""
        kernels.subtract(self.pool, self.meta, row, other, weight, int(self._work[GEN]))

    def clear(self, row: int) -> None:
        """`row` has no neighbours (its region stays for the next ones)."""
        self.size[row] = 0
        self.row_stamps[row] = self._work[GEN]

    def set_total(self, row: int, total: int) -> None:
        """`row`'s own count is `total`."""
        self.totals[row] = total
        self.row_stamps[row] = self._work[GEN]

    def count(self, row: int, other: int) -> int:
        """Pairings of `row` with `other` (0 when none, or pruned)."""
        return int(self.lookup([row], [other])[0, 0])

    def lookup(self, sources: Sequence[int], targets: Sequence[int]) -> IntArray:
        """Pairings of each of `sources` (result rows) with each of `targets` (columns)."""
        found: IntArray = kernels.lookup(
            self.pool, self.meta, np.asarray(sources, np.int64), np.asarray(targets, np.int64)
        )
        return found

    def view(self, row: int) -> tuple[IntArray, IntArray]:
        """(rows, counts) of every neighbour of `row`: the rows without their stamps, the
        counts a slice of the pool."""
        start = int(self.offset[row])
        stop = start + int(self.size[row])
        return self.words[start:stop] & NEIGHBOUR, self.counts[start:stop]

    @property
    def slot_stamps(self) -> IntArray:
        """Each slot's stamp (a copy; what no region holds is meaningless)."""
        stamps: IntArray = self.words >> SHIFT
        return stamps

    def packed(self, n_rows: int, dtype: type[np.signedinteger[Any]]) -> tuple[IntArray, ...]:
        """(sizes, rows, counts) of rows 0..n_rows-1, their regions end to end in `dtype`."""
        sizes = self.size[:n_rows].copy()
        total = int(sizes.sum())
        rows, counts = np.empty(total, dtype), np.empty(total, dtype)
        kernels.gather(self.pool, self.meta, np.arange(n_rows), rows, counts)
        return sizes, rows, counts

    def regions(self, sources: Sequence[int]) -> tuple[IntArray, IntArray, IntArray]:
        """(neighbour rows, counts) of the rows `sources`, regions end to end (one compiled
        copy, not two slices and a mask each), and each region's size."""
        at = np.asarray(sources, np.int64)
        sizes: IntArray = self.size[at]
        total = int(sizes.sum())
        rows, counts = np.empty(total, np.int64), np.empty(total, np.int64)
        kernels.gather(self.pool, self.meta, at, rows, counts)
        return rows, counts, sizes

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
        end = int(made.capacity[:n].sum())
        made._set_pool(np.zeros((2, max(MIN_POOL, 2 * end)), np.int64))
        made._work[END] = end
        where = np.repeat(made.offset[:n] - (np.cumsum(sizes) - sizes), sizes)
        where += np.arange(len(where))
        made.words[where] = np.asarray(rows)  # stamped 0
        made.counts[where] = np.asarray(counts)
        return made

    def _make_room(self, need: int) -> None:
        """At least `need` free slots at the end: every region copied, without the holes
        rows left when they moved, into arrays twice what the regions and `need` take (as
        cheap as copying into longer arrays, so there is no bound below which holes stay)."""
        live = int(self.capacity.sum())
        pool = np.empty((2, max(MIN_POOL, 2 * (live + need))), np.int64)  # read to `end`
        self._work[END] = kernels.compact(self.pool, pool, self.meta)
        self._set_pool(pool)

    def _set_pool(self, pool: IntArray) -> None:
        self.pool = pool
        self.words, self.counts = pool[0], pool[1]

    def _set_meta(self, meta: IntArray) -> None:
        self.meta = meta
        self.offset, self.size, self.capacity = meta[OFFSET], meta[SIZE], meta[CAPACITY]
        self.totals, self.row_stamps = meta[TOTAL], meta[STAMP]
