"""Factored item similarity (FISM) learned by incremental SGD, with recency negatives.

Implements FISM from Kabbur, Ning & Karypis, "FISM: factored item similarity models for
top-N recommender systems" (KDD 2013), learned one event at a time as ISGD is (Vinagre, Jorge
& Gama, UMAP 2014) with the recency-based negatives of Vinagre, Jorge & Gama (ACM SAC 2015).

Why this model: ISGD keeps a latent vector per user inside the global model, which grows with
every user ever seen and must be read and written by whichever copy of the model learns the
user's event. FISM has no user vector: a user is the sum of the vectors of their recent items,

    u = |H|^-alpha · Σ_{j∈H} p_j        score(i) = b_i + u·q_i

and the per-user state step already keeps those items (`history`, passed to every call). So
the model holds only per-item arrays (P, Q, biases, a recency queue): its size follows the
catalogue, not the users, and two users with the same recent items get the same list.

>>> model = FISM(n_factors=4, negatives=1, bias_learning_rate=0.05, seed=7)
>>> sessions = [["a", "b"], ["a", "b"], ["c", "d"], ["c", "d"]] * 40
>>> for items in sessions:
...     for n, item in enumerate(items):
...         model.learn_one(item, items[:n])
>>> model.n_items
4
>>> [item for item, _ in model.recommend(["a"], k=1, exclude={"a"})]  # b follows a
['b']
>>> [item for item, _ in model.recommend(["c"], k=1, exclude={"c"})]
['d']
>>> model.recommend(["a"], k=2, exclude={"a"}) == model.recommend(["a"], k=2, exclude={"a"})
True
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from itertools import repeat
from typing import Any

import numpy as np
import numpy.typing as npt

from tailor.state import increments
from tailor.state.recs import fism_snapshot
from tailor.state.recs.fism_kernel import (
    excluded_met,
    learn_events,
    new_queue,
    queue_order,
    queue_push,
)
from tailor.state.recs.top_k import rank_in_top_k, top_k

__all__ = ["FISM"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

_INITIAL_ROWS = 64


class FISM:
    """Item-only latent factors; the user vector is built from the history at each call.

    Each event (history H, item i) is one SGD step towards b_i + u·q_i = 1, and, when
    `negatives > 0`, towards 0 for the `negatives` least recently interacted items that are
    neither i nor in H nor in `exclude` (one mini-batch from the same u)::

        err_r = target_r - b_r - u·q_r                      for each row r of the batch
        q_r  += lr * (err_r * u - reg * q_r)
        b_r  += bias_lr * (err_r - reg * b_r)
        p_j  += lr * (|H|^-alpha * Σ_r err_r q_r - reg * p_j)   for each j in H

    H is the last `history` known items of the history passed (a repeat of i is left out, as
    FISM leaves the target item out of its own sum); items the model never learned are
    ignored.

    Parameters
    ----------
    n_factors
        Length of the item vectors p (history side) and q (target side).
    learning_rate, regularization
        SGD step size and L2 penalty of p and q.
    negatives
        Steps towards 0 after each positive one; each item used moves to the back of the
        recency queue (so the front is always the items nobody touched for longest).
    init_std
        New p and q are drawn from N(0, init_std²).
    bias_learning_rate
        Step size of the item bias b_i (0: none): popularity, and the whole answer for a user
        with no history.
    alpha
        The normalisation exponent: 0 sums the history vectors, 1 averages them (FISM's
        best values were 0.4-0.5).
    history
        How many of the most recent history items form u (and learn from the event).
    seed
        Seed of the one `numpy.random.default_rng` that draws every new item's p and q, in
        order of first sight: the same events in the same order give the same factors.

    Memory: per item 16·n_factors + 40 bytes in the arrays (factors, bias and the queue's
    links; up to twice that right after a doubling) plus the id -> row entry and the row -> id
    slot; nothing per user.
    """

    def __init__(
        self,
        n_factors: int = 10,
        learning_rate: float = 0.05,
        regularization: float = 0.01,
        negatives: int = 0,
        init_std: float = 0.1,
        bias_learning_rate: float = 0.0,
        alpha: float = 0.5,
        history: int = 20,
        seed: int = 42,
    ) -> None:
        if n_factors < 1 or history < 1:
            raise ValueError("n_factors and history must be >= 1")
        if learning_rate <= 0 or regularization < 0 or init_std < 0 or bias_learning_rate < 0:
            raise ValueError(
                "learning_rate must be > 0, regularization, init_std and bias_learning_rate >= 0"
            )
        if negatives < 0 or alpha < 0:
            raise ValueError("negatives and alpha must be >= 0")
        self.n_factors = n_factors
        self.learning_rate = learning_rate
        self.regularization = regularization
        self.negatives = negatives
        self.init_std = init_std
        self.bias_learning_rate = bias_learning_rate
        self.alpha = alpha
        self.history = history
        self.seed = seed
        self._rng = np.random.default_rng(seed)
        self._p: FloatArray = np.zeros((_INITIAL_ROWS, n_factors), dtype=np.float64)
        self._q: FloatArray = np.zeros((_INITIAL_ROWS, n_factors), dtype=np.float64)
        self._bias: FloatArray = np.zeros(_INITIAL_ROWS, dtype=np.float64)
        self._item_row: dict[str, int] = {}
        self._item_ids: list[str] = []
        # |H|^-alpha by |H|
        self._scales = [0.0] + [n**-alpha for n in range(1, history + 1)]
        self._scale_array: FloatArray = np.array(self._scales)
        # Item rows from least to most recently interacted, a linked list over the rows
        # (`tailor.state.recs.fism_kernel`: O(1) move-to-back, compiled with the step).
        self._links = new_queue(_NO_ROWS, _INITIAL_ROWS)
        # Increments (`tailor.state.recs.fism_snapshot`): the rows at each mark (the generations are
        # in
        # `_links`).
        self._lengths: dict[int, int] = {}

    # ------------------------------------------------------------------ learning

    def learn_one(self, item: str, history: Sequence[str], exclude: Collection[str] = ()) -> None:
        """One step towards 1 for `item` after `history` (oldest first), and the negatives.

        `exclude` (items the caller knows this user touched) is skipped as negatives, as the
        history and the item are: the model keeps no per-user record of its own.
        """
        linked = len(self._item_ids)
        row = self._item_row.get(item)
        row = self._new_row(item) if row is None else row  # queued by the kernel
        self._learn(self._event(row, history, exclude), linked)

    def learn_many(
        self,
        items: Sequence[str],
        histories: Sequence[Sequence[str]],
        excludes: Sequence[Collection[str]],
    ) -> None:
        """`learn_one` for each event in order, in one compiled call: the same factors, queue
        and draws. Each event's rows are found as `learn_one` finds them (an item first seen
        at event e is unknown to the events before it), then the kernel runs the events. An
        event with more than `_LOOK_UP_ALL` exclusions finds them on the queue as it stands
        for it (`excluded_met`): the events before it are learned first."""
        linked = len(self._item_ids)
        get = self._item_row.get
        events: list[int] = []
        for item, history, exclude in zip(items, histories, excludes, strict=True):
            if events and self.negatives and len(exclude) > _LOOK_UP_ALL:
                self._learn(events, linked)
                events, linked = [], len(self._item_ids)
            row = get(item)
            row = self._new_row(item) if row is None else row
            events += self._event(row, history, exclude)
        if events:
            self._learn(events, linked)

    def _event(self, row: int, history: Sequence[str], exclude: Collection[str]) -> list[int]:
        """The event as `tailor.state.recs.fism_kernel.learn_events` reads it: the item's row, the
        history's rows newest first (-1: unknown), the rows of the exclusions."""
        get = self._item_row.get
        event = [row, len(history), *map(get, reversed(history), _UNKNOWN)]
        if not self.negatives:
            return event
        if len(exclude) > _LOOK_UP_ALL:  # the scan meets fewer rows than there are ids
            scan = (self._links, event, len(self._scales) - 1, self.negatives)
            excluded = excluded_met(*scan, self._item_ids, exclude)
            event.append(len(excluded))
            event.extend(excluded)
        else:
            event.append(len(exclude))
            event.extend(map(get, exclude, _UNKNOWN))
        return event

    def _learn(self, events: list[int], linked: int) -> None:
        """The kernel on `events` (`tailor.state.recs.fism_kernel.learn_events`): rows >= `linked`
        are first seen in them."""
        lr, reg, blr = self.learning_rate, self.regularization, self.bias_learning_rate
        p, q, bias, scales = self._p, self._q, self._bias, self._scale_array
        rows = np.fromiter(events, np.int64, len(events))
        learn_events(p, q, bias, self._links, rows, linked, scales, self.negatives, lr, reg, blr)

    def _history_rows(self, history: Sequence[str], leave_out: int = -1) -> list[int]:
        """Rows of the last `history` items of `history` the model knows (newest first),
        without `leave_out`: a walk from the newest end that stops once it has them."""
        get = self._item_row.get
        rows: list[int] = []
        for item in reversed(history):
            row = get(item)
            if row is not None and row != leave_out:
                rows.append(row)
                if len(rows) == self.history:
                    break
        return rows

    def _new_row(self, item: str) -> int:
        """A first-seen item's row, p and q drawn (in order of first sight), not queued yet."""
        drawn = self._rng.normal(0.0, self.init_std, (2, self.n_factors))
        return self._append_item(item, drawn[0], drawn[1])

    def _append_item(self, item: str, p: FloatArray, q: FloatArray) -> int:
        """Add `item` as the next row, doubling the arrays when full (amortised O(1))."""
        row = len(self._item_ids)
        if row == len(self._q):
            self._p = _doubled(self._p)
            self._q = _doubled(self._q)
            self._bias = np.concatenate([self._bias, np.zeros(len(self._bias))])
            self._links = np.concatenate([self._links, np.zeros((row, 5), np.int64)])
        self._p[row] = p
        self._q[row] = q
        self._bias[row] = 0.0
        self._item_row[item] = row
        self._item_ids.append(item)
        return row

    # ------------------------------------------------------------------ serving

    def user_vector(self, history: Sequence[str]) -> FloatArray | None:
        """u for a history (None when no item of it is known): what every score uses."""
        known = self._history_rows(history)
        if not known:
            return None
        h = np.array(known, dtype=np.intp)
        return np.add.reduce(self._p[h], axis=0) * self._scales[len(known)]

    def recommend(
        self, history: Sequence[str], k: int, exclude: Collection[str]
    ) -> list[tuple[str, float]]:
        """Top `k` (item, b_i + u·q_i) for a user with this history, best first, ties to the
        smaller item id. Without a known history item the biases alone rank (nothing when
        there are no biases: the caller's fallback decides). A read only."""
        scores = self._all_scores(history) if k > 0 else None
        return [] if scores is None else top_k(scores, self._item_ids, self._item_row, k, exclude)

    def rank(
        self, history: Sequence[str], k: int, exclude: Collection[str], item: str
    ) -> int | None:
        """`item`'s rank in `recommend(history, k, exclude)` (0: absent), or None when that
        list would be shorter than `k` (`tailor.state.recs.top_k.rank_in_top_k`): a probe's
        question."""
        scores = self._all_scores(history) if k > 0 else None
        if scores is None:
            return None
        return rank_in_top_k(scores, self._item_ids, self._item_row, k, exclude, item)

    def _all_scores(self, history: Sequence[str]) -> FloatArray | None:
        """b_i + u·q_i over the catalogue (the biases alone without a known history item;
        None when there is nothing to rank by)."""
        u = self.user_vector(history)
        n = len(self._item_ids)
        if n == 0 or (u is None and not self.bias_learning_rate):
            return None
        return self._bias[:n].copy() if u is None else self._q[:n] @ u + self._bias[:n]

    def score(self, history: Sequence[str], items: Sequence[str]) -> list[float]:
        """b_i + u·q_i for each item (0.0 for an unknown item; b_i alone without history):
        the model's opinion of candidates another model proposed, one small matvec."""
        if not items:
            return []
        u = self.user_vector(history)
        rows = [self._item_row.get(item, -1) for item in items]
        index = np.array(rows)
        scores = self._bias[index] if u is None else self._q[index] @ u + self._bias[index]
        return [0.0 if row < 0 else float(s) for row, s in zip(rows, scores.tolist(), strict=True)]

    # ------------------------------------------------------------------ state

    @property
    def n_items(self) -> int:
        return len(self._item_ids)

    def item_factors(self, item: str) -> tuple[FloatArray, FloatArray] | None:
        """Copies of the item's (p, q), or None when unknown."""
        row = self._item_row.get(item)
        return None if row is None else (self._p[row].copy(), self._q[row].copy())

    def set_item_factors(
        self, item: str, p: Sequence[float] | FloatArray, q: Sequence[float] | FloatArray
    ) -> None:
        """Set given vectors (warm starts, hand-checked tests); a new item is queued last."""
        checked_p, checked_q = self._checked(p), self._checked(q)
        row = self._item_row.get(item)
        if row is None:
            queue_push(self._links, self._append_item(item, checked_p, checked_q))
        else:
            self._p[row], self._q[row] = checked_p, checked_q
            fism_snapshot.written(self, row)

    def item_bias(self, item: str) -> float | None:
        """The item's bias (0.0 while `bias_learning_rate` is 0), or None when unknown."""
        row = self._item_row.get(item)
        return None if row is None else float(self._bias[row])

    def recency_queue(self) -> list[str]:
        """Item ids from least to most recently interacted (the negatives come from the front)."""
        ids = self._item_ids
        return [ids[row] for row in queue_order(self._links).tolist()]

    def _checked(self, vector: Sequence[float] | FloatArray) -> FloatArray:
        array = np.asarray(vector, dtype=np.float64)
        if array.shape != (self.n_factors,):
            raise ValueError(f"expected a vector of {self.n_factors} factors, got {array.shape}")
        return array

    def to_snapshot(self) -> dict[str, Any]:
        """Settings, the generator's state, the item arrays and queue
        (`tailor.state.recs.fism_snapshot`)."""
        return fism_snapshot.snapshot(self)

    @classmethod
    def from_snapshot(cls, data: Mapping[str, Any]) -> FISM:
        return fism_snapshot.restored(cls, increments.whole(data, cls), _INITIAL_ROWS)

    def mark(self) -> int:
        """Start the next generation (`tailor.state.increments`); rows are stamped as written."""
        return fism_snapshot.mark(self)

    def changes_since(self, mark: int) -> dict[str, Any]:
        """The ids appended and the rows written since `mark`
        (`tailor.state.recs.fism_snapshot`)."""
        return fism_snapshot.changes(self, mark)

    @classmethod
    def patched(cls, whole: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
        return fism_snapshot.patched(whole, changes)


_NO_ROWS: IntArray = np.zeros(0, dtype=np.int64)
_UNKNOWN = repeat(-1)  # the row of an id the model does not know, for `map(dict.get, ...)`
#: More exclusions than this are found from the queue's side (`excluded_met`).
_LOOK_UP_ALL = 64


def _doubled(array: FloatArray) -> FloatArray:
    grown = np.zeros((2 * len(array), array.shape[1]), dtype=np.float64)
    grown[: len(array)] = array
    return grown
