"""FISM's learning compiled (numba): a batch of events, each with its queue moves, negatives
and SGD step, in one call.

Why compiled: the step is ~15 numpy calls on a 17 x 10 block, and each call's overhead, not
its arithmetic, was most of the cost (decision 0006). What was then left in Python (the
recency queue as an `OrderedDict`, the scan for the negatives, the lists and arrays built for
the step) cost as much again, and every replica pays it for every worker's events (decision
0008). Python now does only what needs the item ids (id -> row look-ups, first sight's draws)
and hands this module rows, one array for a whole batch.

The recency queue is a circular doubly linked list over nodes `row + 1` of `links` (columns
prev, next, mark, target, source), node 0 the sentinel (its next is the head, its prev the
tail): move-to-back is O(1), the negatives a walk from the head. `mark` is scratch for one scan
(the rows to skip), zero between calls. `target` and `source` are the increments' generations
(`tailor.state.recs.fism_snapshot`): node 0's target is the current one, which a step gives to the
rows whose q and bias it writes (target, the item and its negatives) and those whose p it writes
(source, u's rows). They are in `links`, not arrays of their own, because each argument adds
to the compiled call's dispatch time. `links` grows with the item arrays (zero rows: not
queued).

The SGD arithmetic is the same loops in the same order as when it was a per-event call, so
the factors are bit for bit those of the per-event code. The compiled code is cached beside
this file (`cache=True`): only a machine's first process compiles it (a few seconds).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import numba
import numpy as np
import numpy.typing as npt

__all__ = ["SOURCE", "TARGET", "excluded_met", "learn_events", "new_queue", "queue_order"]
__all__ += ["queue_push"]

IntArray = npt.NDArray[np.int64]

PREV, NEXT, MARK, TARGET, SOURCE = 0, 1, 2, 3, 4


@numba.njit(cache=True, nogil=True)
def _push(links: Any, node: int) -> None:
    tail = links[0, PREV]
    links[node, PREV] = tail
    links[node, NEXT] = 0
    links[tail, NEXT] = node
    links[0, PREV] = node


@numba.njit(cache=True, nogil=True)
def _to_back(links: Any, node: int) -> None:
    if links[0, PREV] != node:
        before, after = links[node, PREV], links[node, NEXT]
        links[before, NEXT] = after
        links[after, PREV] = before
        _push(links, node)


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
def _mark(links: Any, row: int, history: Any, h: int, rows: Any, at: int, n: int, on: int) -> None:
    """Set (on=1) or clear (on=0) the skip mark of the item, history and excluded rows."""
    links[row + 1, MARK] = on
    for j in range(h):
        links[history[j] + 1, MARK] = on
    for j in range(at, at + n):
        if rows[j] >= 0:
            links[rows[j] + 1, MARK] = on


@numba.njit(cache=True, nogil=True)
def _history_rows(events: Any, at: int, size: int, row: int, history: Any) -> int:
    """u's rows into `history`: the first len(history) known rows of events[at:at + size]
    (the history newest first) other than the item's `row`; returns how many."""
    h = 0
    for j in range(at, at + size):
        found = events[j]
        if found >= 0 and found != row:
            history[h] = found
            h += 1
            if h == history.shape[0]:
                break
    return h


@numba.njit(cache=True, nogil=True)
def learn_events(
    p: Any,
    q: Any,
    bias: Any,
    links: Any,
    events: Any,
    linked: int,
    scales: Any,
    negatives: int,
    lr: float,
    reg: float,
    bias_lr: float,
) -> None:
    """Learn the events in order, each as `FISM.learn_one` did. `events` holds, per event:
    the item's row, the history's length, its rows newest first (-1: unknown), the number of
    excluded ids, their rows (-1: unknown; absent when `negatives` is 0).

    The item goes to the back of the queue (queued there if its row is >= `linked`: first
    seen in this batch, rows come in order of first sight); u is the first len(scales) - 1
    history rows other than the item's; the negatives are the first `negatives` rows from
    the head other than the item, u's rows and the excluded rows, moved to the back in that
    order; then the SGD step with scale = scales[len(u's rows)]. Every row the step writes
    gets the current generation (node 0's target): as target the item and the negatives, as
    source u's rows."""
    k = p.shape[1]
    max_history = scales.shape[0] - 1
    u, pull = np.empty(k), np.empty(k)
    err = np.empty(negatives + 1)
    rows = np.empty(negatives + 1, np.int64)
    history = np.empty(max_history, np.int64)
    generation = links[0, TARGET]
    at = 0
    while at < events.shape[0]:
        row, size = events[at], events[at + 1]
        at += 2
        if row >= linked:  # first seen in this batch: queued now, as learn_one did
            _push(links, row + 1)
            linked += 1
        else:
            _to_back(links, row + 1)
        h = _history_rows(events, at, size, row, history)
        at += size
        rows[0] = row
        n = 1
        if negatives > 0:
            size = events[at]
            at += 1
            _mark(links, row, history, h, events, at, size, 1)
            node = links[0, NEXT]
            while node != 0 and n <= negatives:
                if links[node, MARK] == 0:
                    rows[n] = node - 1
                    n += 1
                node = links[node, NEXT]
            _mark(links, row, history, h, events, at, size, 0)
            at += size
            for r in range(1, n):
                _to_back(links, rows[r] + 1)
        _step(p, q, bias, rows, n, history[:h], scales[h], lr, reg, bias_lr, u, err, pull)
        for r in range(n):
            links[rows[r] + 1, TARGET] = generation
        for j in range(h):
            links[history[j] + 1, SOURCE] = generation


@numba.njit(cache=True, nogil=True)
def _front(links: Any, event: Any, max_history: int, start: int, count: int) -> Any:
    """Rows `start` to `start + count` (fewer at the tail) of those the scan for this event's
    negatives meets before its exclusions: the queue from the head without the item and u's
    rows (`event`: the item's row, the history's length, its rows newest first)."""
    row = event[0]
    history = np.empty(max_history, np.int64)
    h = _history_rows(event, 2, event[1], row, history)
    _mark(links, row, history, h, event, 0, 0, 1)
    met = np.empty(count, np.int64)
    seen, n, node = 0, 0, links[0, NEXT]
    while node != 0 and n < count:
        if links[node, MARK] == 0:
            if seen >= start:
                met[n] = node - 1
                n += 1
            seen += 1
        node = links[node, NEXT]
    _mark(links, row, history, h, event, 0, 0, 0)
    return met[:n]


def excluded_met(
    links: IntArray,
    event: list[int],
    max_history: int,
    negatives: int,
    ids: list[str],
    exclude: Collection[str],
) -> list[int]:
    """The rows of `ids` in `exclude` that the scan for this event's negatives meets (`event`
    as in `learn_events`, without exclusions): the rows it meets, in growing chunks, checked
    against `exclude` up to the `negatives`-th not excluded. For a large `exclude` (a user's
    whole kept history): as many set probes as the Python scan made, not a look-up per id."""
    head = np.fromiter(event, np.int64, len(event))
    excluded: list[int] = []
    start, count, free = 0, negatives + 4, 0
    while True:
        met = _front(links, head, max_history, start, count).tolist()
        for row in met:
            if ids[row] in exclude:
                excluded.append(row)
            else:
                free += 1
                if free == negatives:
                    return excluded  # the scan stops here
        if len(met) < count:
            return excluded  # it met the whole queue
        start, count = start + count, 2 * count


def new_queue(order: IntArray, capacity: int) -> IntArray:
    """`links` of a queue holding `order` (rows, head first), room for `capacity` rows."""
    links = np.zeros((capacity + 1, 5), dtype=np.int64)
    nodes = np.concatenate([[0], np.asarray(order, dtype=np.int64) + 1, [0]])
    links[nodes[1:], PREV] = nodes[:-1]
    links[nodes[:-1], NEXT] = nodes[1:]
    return links


def queue_push(links: IntArray, row: int) -> None:
    """Queue `row` at the back (a row added outside learning: a warm start)."""
    _push(links, row + 1)


@numba.njit(cache=True, nogil=True)
def _order(links: Any) -> Any:
    order = np.empty(links.shape[0] - 1, np.int64)
    node, i = links[0, NEXT], 0
    while node != 0:
        order[i] = node - 1
        i += 1
        node = links[node, NEXT]
    return order[:i]


def queue_order(links: IntArray) -> IntArray:
    """The queued rows from the head (least recently interacted) to the tail."""
    result: IntArray = _order(links)
    return result
