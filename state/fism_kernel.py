"""FISM's learning compiled (numba): a batch of events, each its queue moves, negatives and
SGD step, in one call.

Why compiled: the step is ~15 numpy calls on a 17 x 10 block, and each call's overhead, not
its arithmetic, was most of the cost (decision 0006: 58 -> 23 µs a `learn_one` on
MovieLens). What was left in Python (the recency queue as an `OrderedDict`, the scan for the
negatives, the lists and arrays built for the step) then cost as much again, paid by every
replica for every worker's events; decision 0008 moved it here. Python now does only what
needs the item ids (the id -> row look-ups, first sight's draws); this module takes rows.

The recency queue is a doubly linked list over the item rows (`links[r] = (prev, next,
mark)`, -1 at the ends; `ends = (head, tail)`): move-to-back is O(1) and the negatives are a
walk from the head. `mark` is scratch for one scan (the rows to skip), zero between calls.

The SGD arithmetic is the same loops in the same order as when it was a per-event call, so
the factors are bit-for-bit those of the per-event code. The compiled code is cached beside
this file (`cache=True`): only a machine's first process compiles it (a few seconds).
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
import numpy.typing as npt

__all__ = ["learn_events", "queue_from_order", "queue_order", "queue_push"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

PREV, NEXT, MARK = 0, 1, 2


@numba.njit(cache=True, nogil=True)
def _unlink(links: Any, ends: Any, row: int) -> None:
    before, after = links[row, PREV], links[row, NEXT]
    if before >= 0:
        links[before, NEXT] = after
    else:
        ends[0] = after
    if after >= 0:
        links[after, PREV] = before
    else:
        ends[1] = before


@numba.njit(cache=True, nogil=True)
def _push(links: Any, ends: Any, row: int) -> None:
    tail = ends[1]
    links[row, PREV] = tail
    links[row, NEXT] = -1
    if tail >= 0:
        links[tail, NEXT] = row
    else:
        ends[0] = row
    ends[1] = row


@numba.njit(cache=True, nogil=True)
def _to_back(links: Any, ends: Any, row: int) -> None:
    if ends[1] != row:
        _unlink(links, ends, row)
        _push(links, ends, row)


@numba.njit(cache=True, nogil=True)
def _step(
    p: Any,
    q: Any,
    bias: Any,
    rows: Any,
    n: int,
    history: Any,
    scale: float,
    lr: float,
    reg: float,
    bias_lr: float,
    u: Any,
    err: Any,
    pull: Any,
) -> None:
    """One event's SGD: rows[0] (target 1) and rows[1:n] (targets 0) from u, the history rows'
    sum. The loops and their order are the per-event kernel's (decision 0006), unchanged."""
    k = p.shape[1]
    for f in range(k):
        u[f] = 0.0
    for j in range(history.shape[0]):
        for f in range(k):
            u[f] += p[history[j], f]
    for f in range(k):
        u[f] *= scale
    for r in range(n):
        dot = 0.0
        for f in range(k):
            dot += q[rows[r], f] * u[f]
        target = 1.0 if r == 0 else 0.0
        err[r] = target - bias[rows[r]] - dot
    shrink = 1.0 - lr * reg
    if history.shape[0] > 0:
        for f in range(k):
            pull[f] = 0.0
        for r in range(n):
            for f in range(k):
                pull[f] += err[r] * q[rows[r], f]
        for j in range(history.shape[0]):
            for f in range(k):
                p[history[j], f] = p[history[j], f] * shrink + lr * scale * pull[f]
    for r in range(n):
        for f in range(k):
            q[rows[r], f] = q[rows[r], f] * shrink + lr * err[r] * u[f]
    for r in range(n):
        bias[rows[r]] = bias[rows[r]] * (1.0 - bias_lr * reg) + bias_lr * err[r]


@numba.njit(cache=True, nogil=True)
def _learn(
    p: Any,
    q: Any,
    bias: Any,
    links: Any,
    ends: Any,
    items: Any,
    looked_up: Any,
    looked_ends: Any,
    excluded: Any,
    excluded_ends: Any,
    linked: int,
    scales: Any,
    negatives: int,
    lr: float,
    reg: float,
    bias_lr: float,
) -> None:
    k = p.shape[1]
    max_history = scales.shape[0] - 1
    u, pull = np.empty(k), np.empty(k)
    err = np.empty(negatives + 1)
    rows = np.empty(negatives + 1, np.int64)
    history = np.empty(max_history, np.int64)
    start = 0
    for e in range(items.shape[0]):
        row = items[e]
        if row >= linked:  # first sight, in this batch: queued now, as learn_one did
            _push(links, ends, row)
            linked += 1
        else:
            _to_back(links, ends, row)
        # the last `max_history` known rows of the history, newest first, the item left out
        h = 0
        for j in range(start, looked_ends[e]):
            found = looked_up[j]
            if found >= 0 and found != row:
                history[h] = found
                h += 1
                if h == max_history:
                    break
        start = looked_ends[e]
        rows[0] = row
        n = 1
        if negatives > 0:
            first = 0 if e == 0 else excluded_ends[e - 1]
            links[row, MARK] = 1
            for j in range(h):
                links[history[j], MARK] = 1
            for j in range(first, excluded_ends[e]):
                if excluded[j] >= 0:
                    links[excluded[j], MARK] = 1
            candidate = ends[0]
            while candidate >= 0 and n <= negatives:
                if links[candidate, MARK] == 0:
                    rows[n] = candidate
                    n += 1
                candidate = links[candidate, NEXT]
            links[row, MARK] = 0
            for j in range(h):
                links[history[j], MARK] = 0
            for j in range(first, excluded_ends[e]):
                if excluded[j] >= 0:
                    links[excluded[j], MARK] = 0
            for r in range(1, n):
                _to_back(links, ends, rows[r])
        _step(p, q, bias, rows, n, history[:h], scales[h], lr, reg, bias_lr, u, err, pull)


def learn_events(
    p: FloatArray,
    q: FloatArray,
    bias: FloatArray,
    links: IntArray,
    ends: IntArray,
    items: IntArray,
    looked_up: IntArray,
    looked_ends: IntArray,
    excluded: IntArray,
    excluded_ends: IntArray,
    linked: int,
    scales: FloatArray,
    negatives: int,
    rates: tuple[float, float, float],
) -> None:
    """Learn events in order, each as `FISM.learn_one` does: the item row to the back of the
    queue (queued there if it is >= `linked`, a row first seen in this batch: they come in
    row order); its history rows (event e's `looked_up[looked_ends[e-1]:looked_ends[e]]`, the
    history's rows newest first, -1 for an unknown item) are the first len(scales) - 1 known
    ones, the item left out; the negatives the first `negatives` rows from the head that are
    not the item, a history row or one of its `excluded` rows (-1 ignored); they go to the
    back in that order; then the SGD step with `rates` (lr, reg, bias lr) and
    scale = scales[len(history rows)]."""
    lr, reg, bias_lr = rates
    _learn(
        p, q, bias, links, ends, items, looked_up, looked_ends, excluded, excluded_ends,
        linked, scales, negatives, lr, reg, bias_lr,
    )  # fmt: skip


def queue_push(links: IntArray, ends: IntArray, row: int) -> None:
    """Queue `row` at the back (a row added outside learning: a warm start)."""
    _push(links, ends, row)


@numba.njit(cache=True, nogil=True)
def _order(links: Any, ends: Any, n: int) -> Any:
    order = np.empty(n, np.int64)
    row, i = ends[0], 0
    while row >= 0:
        order[i] = row
        i += 1
        row = links[row, NEXT]
    return order[:i]


def queue_order(links: IntArray, ends: IntArray, n: int) -> IntArray:
    """The `n` queued rows from the head (least recently interacted) to the tail."""
    result: IntArray = _order(links, ends, n)
    return result


def queue_from_order(order: IntArray, capacity: int) -> tuple[IntArray, IntArray]:
    """(links, ends) of a queue holding `order` (rows, head first) in arrays of `capacity`."""
    links = np.full((capacity, 3), -1, dtype=np.int64)
    links[:, MARK] = 0
    ends = np.array([-1, -1], dtype=np.int64)
    if len(order):
        links[order[1:], PREV] = order[:-1]
        links[order[:-1], NEXT] = order[1:]
        ends[:] = order[0], order[-1]
    return links, ends
