"""FISM as it was before its bookkeeping was compiled (state/recs/fism.py and
state/recs/fism_kernel.py
before decision 0008), verbatim but for this docstring, the imports and its top-k (unchanged
by the compiling, so `tailor.state.recs.top_k`'s): the reference the
compiled bookkeeping must equal bit for bit (tests/state/test_fism_exact.py). Python's
`OrderedDict` recency queue and negatives scan, one `sgd_step` call per event."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numba
import numpy as np
import numpy.typing as npt

from tailor.state.recs.top_k import top_k

__all__ = ["FISM"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]

_INITIAL_ROWS = 64


@numba.njit(cache=True, nogil=True)
def _step(
    p: Any,
    q: Any,
    bias: Any,
    rows: Any,
    history: Any,
    targets: Any,
    scale: float,
    lr: float,
    reg: float,
    bias_lr: float,
) -> None:
    k = p.shape[1]
    n = rows.shape[0]
    u = np.zeros(k)
    for j in range(history.shape[0]):
        for f in range(k):
            u[f] += p[history[j], f]
    for f in range(k):
        u[f] *= scale
    err = np.empty(n)
    for r in range(n):
        dot = 0.0
        for f in range(k):
            dot += q[rows[r], f] * u[f]
        err[r] = targets[r] - bias[rows[r]] - dot
    shrink = 1.0 - lr * reg
    if history.shape[0] > 0:
        pull = np.zeros(k)
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


def sgd_step(
    p: FloatArray,
    q: FloatArray,
    bias: FloatArray,
    rows: IntArray,
    history: IntArray,
    targets: FloatArray,
    scale: float,
    lr: float,
    reg: float,
    bias_lr: float,
) -> None:
    """One event: u = scale · Σ p_j over the `history` rows, err_r = target_r - b_r - u·q_r
    for each of `rows` (the item, then its negatives; distinct), then p_j, q_r and b_r move
    as `FISM.learn_one` says, every gradient from the values before the step."""
    _step(p, q, bias, rows, history, targets, scale, lr, reg, bias_lr)


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

    Memory: per item 16·n_factors + 8 bytes in the arrays (up to twice that right after a
    doubling) plus the id -> row entry, the row -> id slot and the queue entry, as in ISGD;
    nothing per user.
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
        # |H|^-alpha by |H|, and the batch's targets (the item's 1, the negatives' 0s).
        self._scales = [0.0] + [n**-alpha for n in range(1, history + 1)]
        self._targets: FloatArray = np.zeros(negatives + 1)
        self._targets[0] = 1.0
        # Item rows from least to most recently interacted (O(1) move-to-back).
        self._queue: OrderedDict[int, None] = OrderedDict()

    # ------------------------------------------------------------------ learning

    def learn_one(self, item: str, history: Sequence[str], exclude: Collection[str] = ()) -> None:
        """One step towards 1 for `item` after `history` (oldest first), and the negatives.

        `exclude` (items the caller knows this user touched) is skipped as negatives, as the
        history and the item are: the model keeps no per-user record of its own.
        """
        row = self._row(item)
        self._queue.move_to_end(row)
        known = self._history_rows(history, row)  # a repeat of the item is left out
        rows = [row, *self._pick_negatives(row, known, exclude)] if self.negatives else [row]
        for negative in rows[1:]:
            self._queue.move_to_end(negative)
        h = np.array(known, dtype=np.intp)
        scale = self._scales[len(known)]
        lr, reg, blr = self.learning_rate, self.regularization, self.bias_learning_rate
        index = np.array(rows, dtype=np.intp)
        sgd_step(self._p, self._q, self._bias, index, h, self._targets, scale, lr, reg, blr)

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

    def _pick_negatives(self, row: int, known: list[int], exclude: Collection[str]) -> list[int]:
        """The `negatives` least recently interacted rows that are not `row`, not among the
        history rows forming u and not in `exclude` (the live step's exclusions hold the
        whole kept history): a scan of at most `negatives` + skipped rows."""
        skip = set(known)
        skip.add(row)
        ids = self._item_ids
        picked: list[int] = []
        for candidate in self._queue:
            if candidate not in skip and ids[candidate] not in exclude:
                picked.append(candidate)
                if len(picked) == self.negatives:
                    break
        return picked

    def _row(self, item: str) -> int:
        """The item's row, appended (p and q drawn, queued at the back) on first sight."""
        row = self._item_row.get(item)
        if row is None:
            drawn = self._rng.normal(0.0, self.init_std, (2, self.n_factors))
            row = self._append_item(item, drawn[0], drawn[1])
        return row

    def _append_item(self, item: str, p: FloatArray, q: FloatArray) -> int:
        """Add `item` as the next row, doubling the arrays when full (amortised O(1))."""
        row = len(self._item_ids)
        if row == len(self._q):
            self._p = _doubled(self._p)
            self._q = _doubled(self._q)
            self._bias = np.concatenate([self._bias, np.zeros(len(self._bias))])
        self._p[row] = p
        self._q[row] = q
        self._bias[row] = 0.0
        self._item_row[item] = row
        self._item_ids.append(item)
        self._queue[row] = None
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
        u = self.user_vector(history)
        n = len(self._item_ids)
        if k <= 0 or n == 0 or (u is None and not self.bias_learning_rate):
            return []
        scores = self._bias[:n].copy() if u is None else self._q[:n] @ u + self._bias[:n]
        return top_k(scores, self._item_ids, self._item_row, k, exclude)

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
            self._append_item(item, checked_p, checked_q)
        else:
            self._p[row], self._q[row] = checked_p, checked_q

    def item_bias(self, item: str) -> float | None:
        """The item's bias (0.0 while `bias_learning_rate` is 0), or None when unknown."""
        row = self._item_row.get(item)
        return None if row is None else float(self._bias[row])

    def recency_queue(self) -> list[str]:
        """Item ids from least to most recently interacted (the negatives come from the front)."""
        return [self._item_ids[row] for row in self._queue]

    def _checked(self, vector: Sequence[float] | FloatArray) -> FloatArray:
        array = np.asarray(vector, dtype=np.float64)
        if array.shape != (self.n_factors,):
            raise ValueError(f"expected a vector of {self.n_factors} factors, got {array.shape}")
        return array

    def to_snapshot(self) -> dict[str, Any]:
        """Settings, the generator's state and the item arrays: no user appears in it."""
        n = len(self._item_ids)
        return {
            **{name: getattr(self, name) for name in _SETTINGS},
            "rng": self._rng.bit_generator.state,
            "item_ids": list(self._item_ids),
            "p": self._p[:n].copy(),
            "q": self._q[:n].copy(),
            "bias": self._bias[:n].copy(),
            "queue": np.fromiter(self._queue, np.int64, len(self._queue)),
        }

    @classmethod
    def from_snapshot(cls, data: Mapping[str, Any]) -> FISM:
        made = cls(**{name: data[name] for name in _SETTINGS})
        made._rng.bit_generator.state = data["rng"]
        ids: list[str] = list(data["item_ids"])
        rows = max(_INITIAL_ROWS, len(ids))
        for name in ("p", "q"):
            array = np.zeros((rows, made.n_factors), dtype=np.float64)
            array[: len(ids)] = data[name]
            setattr(made, f"_{name}", array)
        made._bias = np.zeros(rows, dtype=np.float64)
        made._bias[: len(ids)] = data["bias"]
        made._item_ids = ids
        made._item_row = {item: row for row, item in enumerate(ids)}
        made._queue = OrderedDict.fromkeys(data["queue"].tolist())
        return made


_SETTINGS: tuple[str, ...] = ("n_factors", "learning_rate", "regularization", "negatives")
_SETTINGS += ("init_std", "bias_learning_rate", "alpha", "history", "seed")


def _doubled(array: FloatArray) -> FloatArray:
    grown = np.zeros((2 * len(array), array.shape[1]), dtype=np.float64)
    grown[: len(array)] = array
    return grown
