"""`tailor.state.recs.neighbour_changes` on a `NeighbourPool` written directly: each kind of write
on its own after a mark (within `CoOccurrence` some writes only ever follow others that stamp the
same row in the same generation, so only here can a missing stamp show)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tailor.state.recs.neighbour_changes import changes, packed_type, patch
from tailor.state.recs.neighbour_pool import NeighbourPool, flat_events

N_ROWS = 12


def learned() -> NeighbourPool:
    """Rows 0..5 paired with one another, row 5 the most."""
    pool = NeighbourPool(max_size=20)
    pool.reserve_rows(N_ROWS)
    items = [5, 4, 3, 5, 2, 1, 0, 5]
    paired = [[0, 1, 2, 3, 4], [0, 1, 2], [0, 1, 4], [1], [0], [0], [5, 4], [1, 3]]
    pool.learn(flat_events(items, [1] * len(items), paired), len(items), 20, 10, str)
    return pool


def check(pool: NeighbourPool, step: Callable[[], None]) -> tuple[np.ndarray, np.ndarray]:
    """After `step`, the base of before patched with the changes equals the pool now; the
    changes (rows, slots)."""
    base = (pool.totals[:N_ROWS].copy(), *pool.packed(N_ROWS, np.int64))
    mark = pool.mark()
    step()
    rows, slots = changes(pool, N_ROWS, mark, np.int64)
    now = (pool.totals[:N_ROWS], *pool.packed(N_ROWS, packed_type(N_ROWS, pool.totals)))
    for got, want in zip(patch(base, N_ROWS, rows, slots), now, strict=True):
        assert got.dtype == want.dtype and got.tolist() == want.tolist()
    return rows, slots


def test_a_prune_sends_its_row_and_the_slots_that_moved() -> None:
    pool = learned()
    before = pool.view(5)[0].tolist()
    rows, slots = check(pool, lambda: pool.prune(5, 2, str))
    assert rows[0].tolist() == [5] and len(pool.view(5)[0]) == 2 < len(before)
    assert slots.shape[1] <= 2


def test_a_cleared_row_sends_its_new_size() -> None:
    pool = learned()
    rows, slots = check(pool, lambda: pool.clear(0))
    assert rows.tolist() == [[0], [0], [int(pool.totals[0])], [0]] and slots.shape == (3, 0)


def test_a_subtraction_sends_the_slot_it_wrote() -> None:
    pool = learned()
    check(pool, lambda: pool.subtract(5, 1, 1))  # the count goes down
    rows, slots = check(pool, lambda: pool.subtract(5, 0, 10))  # the last slot fills its place
    assert rows[0].tolist() == [5] and slots.shape[1] == 1


def test_a_new_total_sends_its_row() -> None:
    pool = learned()
    rows, _ = check(pool, lambda: pool.set_total(3, 0))
    assert rows[0].tolist() == [3]


def test_moves_and_compactions_carry_the_stamps_with_the_slots() -> None:
    """Row 5's count with 0 grows, then the row outgrows its region and moves (in the same
    event), then the pool is compacted: the slot written still counts as changed, and only
    it and the new ones."""
    pool = learned()
    events = flat_events([5], [1], [[0, *range(11, 5, -1)]])
    offset = int(pool.offset[5])

    def learn_and_compact() -> None:
        pool.learn(events, 1, 20, 10, str)
        pool._make_room(100)

    rows, slots = check(pool, learn_and_compact)
    assert pool.offset[5] != offset and rows[0].tolist() == [0, 5, *range(6, 12)]
    assert rows[3, 1] == 7  # row 5's slot with 0 and its six new slots; one for each other
    first = int(rows[3, 0])
    assert slots[0, first : first + 7].tolist() == [0, *range(5, 11)]
    _, slots = check(pool, lambda: pool._make_room(100))
    assert slots.shape == (3, 0)
