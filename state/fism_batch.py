"""FISM's mini-batch step: many interactions learned in a few numpy calls (`FISM.learn_many`).

Why: with several workers each replica also learns every other worker's events, and no list
is served between those. `FISM.learn_one` makes ~10 numpy calls on tiny arrays per event; here
a chunk of events shares them, and only the bookkeeping (item rows, history rows, negatives,
queue moves) stays a Python loop per event.

The bookkeeping is what `learn_one` calls in order would do: an item is interned at its first
sight (the same draws of the same generator), u is built from the history rows known at the
event, the negatives are the least recently interacted rows at the event (after the earlier
events moved theirs to the back) and the queue ends in the same order. One bound: the rows an
event had to skip (its item, history or exclusions) stay at the front for the next events, as
in `learn_one`, but each event looks at only the first `negatives` of them before walking on.

What differs: within a chunk of `chunk` events every gradient is computed from the parameters
as they stood at the chunk's start, and the gradients are summed into P, Q and the biases
(one mini-batch SGD step). Chunks, not the whole batch, because one user's session puts the
same rows in many consecutive events: summing 500 steps of one row from one starting point
overshoots (on MovieLens, a fifth of Recall@10 lost against learn_one), 50 stays close.
A history holding an item twice (the user step keeps them distinct) moves that p twice here,
once in `learn_one`.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from state.fism import FISM

__all__ = ["CHUNK", "learn_many"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]

CHUNK = 50


def learn_many(
    model: FISM,
    items: Sequence[str],
    histories: Sequence[Sequence[str]],
    excludes: Sequence[Collection[str]] | None = None,
    *,
    chunk: int = CHUNK,
) -> None:
    """Learn the interactions (`items[e]` after `histories[e]`, oldest first, skipping
    `excludes[e]` as negatives) in order, one summed SGD step per `chunk` of them (see the
    module): a batch of one is exactly `learn_one`."""
    if len(histories) != len(items) or (excludes is not None and len(excludes) != len(items)):
        raise ValueError("items, histories and excludes must have one entry per interaction")
    if chunk < 1:
        raise ValueError("chunk must be >= 1")
    if not items:
        return
    n_before = model.n_items
    rows, h_rows, h_counts = _intern(model, items, histories)
    if model.negatives:
        moves, r_counts = _negatives(model, rows, h_rows, h_counts, excludes, n_before)
    else:
        moves, r_counts = rows, [1] * len(rows)
    move_to_end = model._queue.move_to_end
    for row in moves:  # the order `learn_one` calls would leave
        move_to_end(row)
    r_at = h_at = 0
    for at in range(0, len(items), chunk):
        r_chunk, h_chunk = r_counts[at : at + chunk], h_counts[at : at + chunk]
        r_to, h_to = r_at + sum(r_chunk), h_at + sum(h_chunk)
        _step(model, moves[r_at:r_to], r_chunk, h_rows[h_at:h_to], h_chunk)
        r_at, h_at = r_to, h_to


def _intern(
    model: FISM, items: Sequence[str], histories: Sequence[Sequence[str]]
) -> tuple[list[int], list[int], list[int]]:
    """Each event's item row (interned on first sight, in event order) and the rows of its
    last `model.history` known history items, newest first, the item left out (flat, with
    a count per event): the item rows known at that event, as `learn_one` would see them."""
    get = model._item_row.get
    cap = model.history
    rows: list[int] = []
    h_rows: list[int] = []
    h_counts: list[int] = []
    for item, history in zip(items, histories, strict=True):
        row = get(item)
        if row is None:
            row = model._row(item)
        rows.append(row)
        count = 0
        for known in reversed(history):
            h = get(known)
            if h is not None and h != row:
                h_rows.append(h)
                count += 1
                if count == cap:
                    break
        h_counts.append(count)
    return rows, h_rows, h_counts


def _negatives(
    model: FISM,
    rows: list[int],
    h_rows: list[int],
    h_counts: list[int],
    excludes: Sequence[Collection[str]] | None,
    n_before: int,
) -> tuple[list[int], list[int]]:
    """The queue moves of the batch, event by event (its item, then its negatives), and how
    many rows each event moves: the negatives `learn_one` calls would pick.

    The queue `learn_one` would walk at an event is the rows older than the batch that no
    earlier event of it moved, then the batch's moves (each row at its last move only). One
    cursor walks the old queue (a lazy iteration, not a copy), then the moves; the rows an
    event walked past because it had to skip them are held, in queue order, and the first
    `negatives` of them are offered first to each next event, as they would still be at the
    front (a user excluding much of the catalogue would otherwise make every later event
    re-walk them all). An event stops when the walk reaches its own moves: `learn_one` too
    takes fewer negatives when the catalogue runs out."""
    ids = model._item_ids
    wanted = model.negatives
    moves: list[int] = []
    last: dict[int, int] = {}  # row -> index of its last move in `moves`
    counts: list[int] = []
    held: dict[int, None] = {}  # rows walked past, not moved since, in queue order
    older = iter(model._queue)
    in_older = True
    cursor = 0  # into `moves`, once the old queue is spent
    start = 0  # of the event's history rows in h_rows
    for e, row in enumerate(rows):
        first = len(moves)
        last[row] = first
        moves.append(row)
        held.pop(row, None)
        skip = set(h_rows[start : start + h_counts[e]])
        start += h_counts[e]
        skip.add(row)
        exclude = excludes[e] if excludes is not None else ()
        need = wanted
        if held:
            for n, candidate in enumerate(held):
                if n == wanted:
                    break
                if candidate not in skip and ids[candidate] not in exclude:
                    last[candidate] = len(moves)
                    moves.append(candidate)
                    need -= 1
                    if not need:
                        break
            for candidate in moves[first + 1 :]:
                del held[candidate]
        while need:
            if in_older:
                candidate = next(older, n_before)
                if candidate >= n_before:  # the rows interned by this batch come after
                    in_older = False
                    continue
                if candidate in last:
                    continue
            else:
                if cursor >= first:  # reached this event's own moves: nothing left
                    break
                candidate = moves[cursor]
                cursor += 1
                if last[candidate] != cursor - 1:
                    continue
            if candidate in skip or ids[candidate] in exclude:
                held[candidate] = None
                continue
            last[candidate] = len(moves)
            moves.append(candidate)
            need -= 1
        counts.append(len(moves) - first)
    return moves, counts


def _step(
    model: FISM, moves: list[int], r_counts: list[int], h_rows: list[int], h_counts: list[int]
) -> None:
    """The summed SGD step: per event e, err_r = target_r - b_r - u_e·q_r over its rows, then
    Δq_r = lr (err_r u_e - reg q_r), Δb_r = bias_lr (err_r - reg b_r) and, for each history
    row j, Δp_j = lr (|H_e|^-alpha Σ_r err_r q_r - reg p_j), all from the batch's start."""
    n_events = len(r_counts)
    lr, reg, blr = model.learning_rate, model.regularization, model.bias_learning_rate
    rows = np.array(moves, dtype=np.intp)
    r_count = np.array(r_counts, dtype=np.intp)
    r_starts = np.zeros(n_events, dtype=np.intp)
    np.cumsum(r_count[:-1], out=r_starts[1:])
    r_event = np.repeat(np.arange(n_events), r_count)
    h_count = np.array(h_counts, dtype=np.intp)
    scale = np.array(model._scales)[h_count]
    users = np.zeros((n_events, model.n_factors))
    if h_rows:
        h = np.array(h_rows, dtype=np.intp)
        p = model._p[h]
        h_starts = np.zeros(n_events, dtype=np.intp)
        np.cumsum(h_count[:-1], out=h_starts[1:])
        known = h_count > 0
        users[known] = np.add.reduceat(p, h_starts[known], axis=0)
        users *= scale[:, None]
    q = model._q[rows]
    bias = model._bias[rows]
    u = users[r_event]
    target = np.zeros(len(rows))
    target[r_starts] = 1.0
    err = target - bias
    err -= np.einsum("ij,ij->i", q, u)
    if h_rows:
        pulls = np.add.reduceat(err[:, None] * q, r_starts, axis=0)
        pulls *= (lr * scale)[:, None]
        h_event = np.repeat(np.arange(n_events), h_count)
        _scatter(model._p, h, pulls[h_event] - (lr * reg) * p)
    _scatter(model._q, rows, lr * (err[:, None] * u) - (lr * reg) * q)
    if blr:
        _scatter(model._bias, rows, blr * (err - reg * bias))


def _scatter(array: FloatArray, rows: IntArray, deltas: FloatArray) -> None:
    """array[r] += the sum of the deltas given for row r (rows repeat). On rows of vectors,
    `np.add.at` over the flat view is several times faster than over the rows."""
    if deltas.ndim == 1 or not array.flags.c_contiguous:
        np.add.at(array, rows, deltas)
        return
    width = array.shape[1]
    flat = (rows[:, None] * width + np.arange(width)).reshape(-1)
    np.add.at(array.reshape(-1), flat, deltas.reshape(-1))
