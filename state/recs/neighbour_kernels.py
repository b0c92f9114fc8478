"""The compiled steps (numba) of `tailor.state.recs.neighbour_pool`: learn events, subtract, look
up, pack.

Why compiled: learning an event is ~20 small updates (the item's row gains the recent items,
each recent item's row gains the item), each a short scan of a region; as numba loops the
event, or a remote batch of events, is one call instead of ~20 dict and array operations in
Python. What is left per call is numba's dispatch, which costs about a tenth of a µs per
argument it type-checks: hence few arguments, the pool's arrays stacked (`pool`: rows and
counts; `meta`: the per-row arrays) and the events flattened into one array. The compiled
code is cached beside this file (`cache=True`): only a machine's first process compiles it
(~3 s; regions are copied by plain loops, as 2-D slice assignments took 7 s more).

Layouts. `pool[0, slot]` a neighbour's row in its low `SHIFT` bits (`& NEIGHBOUR`; rows are
below 2**32) and above them the generation that last wrote the slot (`>> SHIFT`);
`pool[1, slot]` its count. `meta[OFFSET, row]`, `meta[SIZE, row]`, `meta[CAPACITY, row]`: the row's
region; `meta[MARK]` scratch, zero between calls; `meta[TOTAL, row]` the row's own (weighted)
count; `meta[STAMP, row]` the generation that last changed the row's size, total or any of
its slots. `work[:HEADER]`: the pool's end, the current generation (`work[GEN]`) and what a
call reports; after it, scratch. `events` for m events: items, weights, m + 1 bounds into the
paired rows, the paired rows (`flat_events`).

Why stamps: a snapshot can then be a base plus the rows and slots written since
(`tailor.state.recs.neighbour_changes`); a slot, not a row, because most rows change a little in an
epoch while few of their slots do. Every write stamps, here and in
`tailor.state.recs.neighbour_pool`. A slot's stamp shares its neighbour's word, so it moves with the
slot for free, costs no memory and is written to a cache line the step has just read (as a third row
of the pool it made
`learn_many` 10-20% slower, mostly from the larger pool's copies and fresh pages).
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

OFFSET, SIZE, CAPACITY, MARK, TOTAL, STAMP, META_ROWS = range(7)
END, NEXT, FLAGGED, NEED, GEN, HEADER = range(6)
#: A slot's neighbour row is `pool[0, slot] & NEIGHBOUR`, its stamp `pool[0, slot] >> SHIFT`.
SHIFT = 32
NEIGHBOUR = (1 << SHIFT) - 1
DONE, PRUNE, ROOM, SCRATCH = range(4)
#: A row's first region, in slots; it doubles from there, up to the largest a row can get.
INITIAL = 8


@numba.njit(cache=True, nogil=True)
def grown(capacity: int, needed: int, max_size: int) -> int:
    """A moved row's new region: twice the old one (at least `INITIAL`), but no more than a
    row can ever hold, and at least `needed`."""
    return max(needed, INITIAL, min(2 * capacity, max_size))


@numba.njit(cache=True, nogil=True)
def _move(pool: Any, meta: Any, work: Any, row: int, needed: int, max_size: int) -> None:
    """`row` into a new region at the pool's end (the caller checked there is room)."""
    start, n, end = meta[OFFSET, row], meta[SIZE, row], work[END]
    for j in range(n):
        pool[0, end + j], pool[1, end + j] = pool[0, start + j], pool[1, start + j]
    meta[OFFSET, row] = end
    meta[CAPACITY, row] = grown(meta[CAPACITY, row], needed, max_size)
    work[END] = end + meta[CAPACITY, row]


@numba.njit(cache=True, nogil=True)
def learn(
    pool: Any, meta: Any, work: Any, events: Any, n_events: int, first: int, limit: int,
    max_size: int,
) -> int:  # fmt: skip
    """Learn events `first`, `first + 1`, ... Returns `DONE`; or `PRUNE` after an event that
    left rows past `limit` (`work[NEXT]` the next event, `work[FLAGGED]` how many rows, the
    rows from `work[HEADER]`); or, the event `work[NEXT]` left untouched, `ROOM` when it might
    not fit in the pool (`work[NEED]` slots) or `SCRATCH` when `work` is too short for it.

    Event e: `meta[TOTAL, item] += weight`, and the item paired both ways with each distinct
    paired row but itself, first occurrence first; new neighbours take the next slots.
    """
    marks, bounds, others = meta[MARK], events[2 * n_events :], events[3 * n_events + 1 :]
    pool_len, gen, stamp = pool.shape[1], work[GEN], work[GEN] << SHIFT
    for e in range(first, n_events):
        item, weight = events[e], events[n_events + e]
        if HEADER + 2 * (bounds[e + 1] - bounds[e] + 1) > work.shape[0]:
            work[NEXT], work[NEED] = e, HEADER + 2 * (bounds[e + 1] - bounds[e] + 1)
            return SCRATCH
        flagged, paired = work[HEADER:], work[HEADER + bounds[e + 1] - bounds[e] + 1 :]
        marks[item] = -1
        k = 0
        for j in range(bounds[e], bounds[e + 1]):
            if marks[others[j]] == 0:
                paired[k] = others[j]
                k += 1
                marks[others[j]] = k
        need = 0  # at most: every paired row new to the item's region, the item new to theirs
        if meta[SIZE, item] + k > meta[CAPACITY, item]:
            need += grown(meta[CAPACITY, item], meta[SIZE, item] + k, max_size)
        for j in range(k):
            if meta[SIZE, paired[j]] + 1 > meta[CAPACITY, paired[j]]:
                need += grown(meta[CAPACITY, paired[j]], meta[SIZE, paired[j]] + 1, max_size)
        if work[END] + need > pool_len:
            marks[item] = 0
            for j in range(k):
                marks[paired[j]] = 0
            work[NEXT], work[NEED] = e, need
            return ROOM
        meta[TOTAL, item] += weight
        meta[STAMP, item] = gen
        start, n = meta[OFFSET, item], meta[SIZE, item]
        for slot in range(start, start + n):  # the item's known neighbours: unmarked
            other = pool[0, slot] & NEIGHBOUR
            if marks[other] > 0:
                pool[0, slot] = other | stamp
                pool[1, slot] += weight
                marks[other] = 0
        new = 0
        for j in range(k):
            new += marks[paired[j]] > 0
        if n + new > meta[CAPACITY, item]:
            _move(pool, meta, work, item, n + new, max_size)
        start = meta[OFFSET, item]
        for j in range(k):
            if marks[paired[j]] > 0:
                pool[0, start + n], pool[1, start + n] = paired[j] | stamp, weight
                n += 1
            marks[paired[j]] = 0
        meta[SIZE, item] = n
        marks[item] = 0
        n_flagged = 0
        for j in range(k):
            other = paired[j]
            start, n = meta[OFFSET, other], meta[SIZE, other]
            slot = start
            while slot < start + n and (pool[0, slot] & NEIGHBOUR) != item:
                slot += 1
            if slot < start + n:
                pool[1, slot] += weight
            else:
                if n + 1 > meta[CAPACITY, other]:
                    _move(pool, meta, work, other, n + 1, max_size)
                    slot = meta[OFFSET, other] + n
                pool[1, slot] = weight
                meta[SIZE, other] = n + 1
            pool[0, slot] = item | stamp
            meta[STAMP, other] = gen
            if meta[SIZE, other] > limit:
                flagged[n_flagged] = other
                n_flagged += 1
        if meta[SIZE, item] > limit:
            flagged[n_flagged] = item
            n_flagged += 1
        if n_flagged:
            work[NEXT], work[FLAGGED] = e + 1, n_flagged
            return PRUNE
    return DONE


@numba.njit(cache=True, nogil=True)
def subtract(pool: Any, meta: Any, row: int, other: int, weight: int, gen: int) -> None:
    """Take `weight` pairings with `other` from `row`; at zero the last slot fills its place
    (the row and the slot written stamped `gen`)."""
    start, n = meta[OFFSET, row], meta[SIZE, row]
    for slot in range(start, start + n):
        if (pool[0, slot] & NEIGHBOUR) == other:
            meta[STAMP, row] = gen
            left = pool[1, slot] - weight
            if left > 0:
                pool[0, slot], pool[1, slot] = other | (gen << SHIFT), left
                return
            last = start + n - 1
            pool[0, slot] = (pool[0, last] & NEIGHBOUR) | (gen << SHIFT)
            pool[1, slot] = pool[1, last]
            meta[SIZE, row] = n - 1
            return


@numba.njit(cache=True, nogil=True)
def lookup(pool: Any, meta: Any, sources: Any, targets: Any) -> Any:
    """Pairings of each source row (rows of the result) with each target row (columns)."""
    out = np.zeros((sources.shape[0], targets.shape[0]), np.int64)
    for i in range(sources.shape[0]):
        start, n = meta[OFFSET, sources[i]], meta[SIZE, sources[i]]
        for slot in range(start, start + n):
            for j in range(targets.shape[0]):
                if (pool[0, slot] & NEIGHBOUR) == targets[j]:
                    out[i, j] = pool[1, slot]
    return out


@numba.njit(cache=True, nogil=True)
def gather(pool: Any, meta: Any, sources: Any, rows: Any, counts: Any) -> None:
    """The regions of rows `sources` end to end into `rows` (neighbours without their stamps)
    and `counts` (a snapshot's integer type, or int64)."""
    at = 0
    for source in sources:
        start = meta[OFFSET, source]
        for slot in range(start, start + meta[SIZE, source]):
            rows[at], counts[at] = pool[0, slot] & NEIGHBOUR, pool[1, slot]
            at += 1


@numba.njit(cache=True, nogil=True)
def compact(pool: Any, new_pool: Any, meta: Any) -> int:
    """Every row's region copied into `new_pool`, in row order, no holes; the new end."""
    end = 0
    for row in range(meta.shape[1]):
        start = meta[OFFSET, row]
        for j in range(meta[SIZE, row]):
            new_pool[0, end + j], new_pool[1, end + j] = pool[0, start + j], pool[1, start + j]
        meta[OFFSET, row] = end
        end += meta[CAPACITY, row]
    return end
