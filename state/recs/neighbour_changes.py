"""What a `NeighbourPool` changed since a generation, and a packed snapshot patched with it.

`tailor.state.recs.cooccurrence` stores its neighbours as a base (`NeighbourPool.packed`: sizes,
then every row's neighbour rows and counts end to end) plus the changes since
(`tailor.state.increments`). Per SLOT, not per row: in a few seconds of traffic most rows gain a
pairing or two, but only a small part of their slots change, so a changed row sends its new size and
total and only the slots stamped after the base's generation (`tailor.state.recs.neighbour_kernels`,
"stamps").

A slot stamped at or before the base's generation holds, at the same position within its
row, what it held in the base: moves and compactions copy a row's slots in order with their
stamps, and whatever writes a slot (learning, subtracting, the last slot filling a removed
one, pruning's moved slots) stamps it. Positions past a row's new size are dropped, and a
row grown past its base size wrote (and stamped) every position it gained.

Layouts (`changes`): `rows` is (4, k), per changed row: row, size, total, how many of its
slots follow; `slots` is (3, m), those slots row after row: position within the row,
neighbour row, count.

>>> from tailor.state.recs.neighbour_pool import flat_events
>>> pool = NeighbourPool(max_size=6)
>>> pool.reserve_rows(4)
>>> pool.learn(flat_events([2], [1], [[0, 1]]), 1, limit=4, keep=2, name=str)
>>> base = (pool.totals[:4].copy(), *pool.packed(4, np.int64))  # totals, sizes, rows, counts
>>> mark = pool.mark()
>>> pool.learn(flat_events([3, 2], [1, 1], [[2], [0]]), 2, limit=4, keep=2, name=str)
>>> changed, slots = changes(pool, 4, mark, np.int64)
>>> changed.tolist()  # rows 0, 2 and 3: size, total, how many slots follow
[[0, 2, 3], [1, 3, 1], [0, 2, 1], [1, 2, 1]]
>>> slots.tolist()  # position, neighbour, count: 0's first, 2's first and third, 3's first
[[0, 0, 2, 0], [2, 0, 3, 2], [2, 2, 1, 1]]
>>> [a.tolist() for a in patch(base, 4, changed, slots)]
[[0, 0, 2, 1], [1, 1, 3, 1], [2, 2, 0, 1, 3, 2], [2, 1, 2, 1, 1, 1]]
>>> [pool.totals[:4].tolist()] + [a.tolist() for a in pool.packed(4, np.int64)]
[[0, 0, 2, 1], [1, 1, 3, 1], [2, 2, 0, 1, 3, 2], [2, 1, 2, 1, 1, 1]]
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
import numpy.typing as npt

from tailor.state.recs.neighbour_kernels import NEIGHBOUR, OFFSET, SHIFT, SIZE
from tailor.state.recs.neighbour_pool import NeighbourPool

__all__ = ["changes", "packed_type", "patch", "patch_rows", "patch_slots"]

IntArray = npt.NDArray[np.int64]
Dtype = type[np.signedinteger[Any]]
INT32_MAX = int(np.iinfo(np.int32).max)


def packed_type(n_rows: int, totals: IntArray) -> Dtype:
    """A snapshot's integer type: int32 when every row and every pair count fits (a pair's
    count is at most the sum of its two items' counts), else int64."""
    fits = n_rows <= INT32_MAX and 2 * int(totals.max(initial=0)) <= INT32_MAX
    return np.int32 if fits else np.int64


def changes(pool: NeighbourPool, n_rows: int, mark: int, dtype: Dtype) -> tuple[IntArray, ...]:
    """(rows, slots) of rows 0..n_rows-1 changed after generation `mark`, in `dtype`."""
    changed = np.flatnonzero(pool.row_stamps[:n_rows] > mark)
    per_row, slots = _collect(pool.pool, pool.meta, changed, mark)
    rows = np.stack([changed, pool.size[changed], pool.totals[changed], per_row])
    return rows.astype(dtype), slots.astype(dtype)


def patch(
    base: tuple[IntArray, IntArray, IntArray, IntArray],
    n_rows: int,
    rows: IntArray,
    slots: IntArray,
) -> tuple[IntArray, IntArray, IntArray, IntArray]:
    """(totals, sizes, neighbours, counts) of `n_rows` rows: the base's (the same four, as
    `NeighbourPool.packed` and the totals give them) with the changes applied, the packed
    arrays in the type the new totals call for (`packed_type`)."""
    totals, sizes, neighbours, counts = base
    new_sizes, new_totals = patch_rows(sizes, totals, n_rows, rows)
    dtype = packed_type(n_rows, new_totals)
    packed = patch_slots(sizes, neighbours, counts, new_sizes, rows, slots, dtype)
    return (new_totals, new_sizes, *packed)


def patch_rows(
    sizes: IntArray, totals: IntArray, n_rows: int, rows: IntArray
) -> tuple[IntArray, IntArray]:
    """The base's (sizes, totals) for `n_rows` rows (new ones empty) with `rows` applied."""
    new_sizes, new_totals = np.zeros(n_rows, np.int64), np.zeros(n_rows, np.int64)
    new_sizes[: len(sizes)], new_totals[: len(totals)] = sizes, totals
    changed = rows[0].astype(np.int64)
    new_sizes[changed], new_totals[changed] = rows[1], rows[2]
    return new_sizes, new_totals


def patch_slots(
    sizes: IntArray,
    neighbours: IntArray,
    counts: IntArray,
    new_sizes: IntArray,
    rows: IntArray,
    slots: IntArray,
    dtype: Dtype,
) -> tuple[IntArray, IntArray]:
    """The base's packed (neighbours, counts), laid out for `new_sizes`, each row keeping
    the part of its base region that fits, then the changed `slots` written over it."""
    total = int(new_sizes.sum())
    out_neighbours, out_counts = np.empty(total, dtype), np.empty(total, dtype)
    _copy_kept(
        np.asarray(sizes, np.int64),
        neighbours.astype(dtype, copy=False),
        counts.astype(dtype, copy=False),
        new_sizes,
        out_neighbours,
        out_counts,
    )
    offsets = np.cumsum(new_sizes) - new_sizes
    changed = rows[0].astype(np.int64)
    where = np.repeat(offsets[changed], rows[3].astype(np.int64)) + slots[0]
    if len(where) and (slots[0] >= np.repeat(new_sizes[changed], rows[3])).any():
        raise ValueError("a changed slot lies past its row's size")
    out_neighbours[where], out_counts[where] = slots[1], slots[2]
    return out_neighbours, out_counts


@numba.njit(cache=True, nogil=True)
def _collect(pool: Any, meta: Any, changed: Any, mark: int) -> tuple[Any, Any]:
    """Per changed row how many of its slots are stamped after `mark`, and those slots
    (position within the row, neighbour, count), row after row: one pass over the changed
    rows into room for all their slots, then cut to what was found."""
    per_row = np.zeros(changed.shape[0], np.int64)
    room = 0
    for i in range(changed.shape[0]):
        room += meta[SIZE, changed[i]]
    slots = np.empty((3, room), np.int64)
    at = 0
    for i in range(changed.shape[0]):
        start = meta[OFFSET, changed[i]]
        for slot in range(start, start + meta[SIZE, changed[i]]):
            word = pool[0, slot]
            if (word >> SHIFT) > mark:
                slots[0, at] = slot - start
                slots[1, at], slots[2, at] = word & NEIGHBOUR, pool[1, slot]
                at += 1
                per_row[i] += 1
    return per_row, slots[:, :at]


@numba.njit(cache=True, nogil=True)
def _copy_kept(
    sizes: Any, neighbours: Any, counts: Any, new_sizes: Any, out_neighbours: Any, out_counts: Any
) -> None:
    """Each base row's first min(size, new size) slots to its place in the new layout."""
    at = new_at = 0
    for row in range(sizes.shape[0]):
        for j in range(min(sizes[row], new_sizes[row])):
            out_neighbours[new_at + j], out_counts[new_at + j] = neighbours[at + j], counts[at + j]
        at += sizes[row]
        new_at += new_sizes[row]
