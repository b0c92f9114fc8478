"""Incremental matrix factorisation for positive-only feedback (ISGD), with recency negatives.

Implements ISGD from Vinagre, Jorge & Gama, "Fast incremental matrix factorization for
recommendation with positive-only feedback" (UMAP 2014, Algorithm 1), and the recency-based
negative feedback of Vinagre, Jorge & Gama, "Collaborative filtering with recency-based
negative feedback" (ACM SAC 2015).

Why: a click stream has no ratings and no negatives, only "user u touched item i". ISGD takes
one SGD step towards 1 on the cell (u, i) per event, in microseconds, with no retraining; so
the factors do not drift to "everything scores 1", a few items nobody touched for longest (the
front of a recency queue) are pushed towards 0 after each event. `ISGDRecommender` serves it.

>>> model = ISGD(n_factors=4, negatives=2, seed=7)
>>> events = [("ann", "a"), ("ann", "b"), ("bob", "a"), ("bob", "b"), ("bob", "c")]
>>> for _ in range(30):
...     for user, item in events:
...         model.add(user, item)
>>> model.n_users, model.n_items
(2, 3)
>>> [item for item, _ in model.recommend("ann", k=3, exclude=[])]  # ann's own items first
['a', 'b', 'c']
>>> [item for item, _ in model.recommend("ann", k=2, exclude=["a", "b"])]
['c']
>>> model.recommend("nobody", k=2, exclude=[])
[]
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Collection, Mapping, Sequence
from typing import Any, Self

import numpy as np
import numpy.typing as npt

from tailor.state.recs.base import Interaction, Recommender, Scored
from tailor.state.recs.top_k import top_k

__all__ = ["ISGD", "ISGDRecommender"]

FloatArray = npt.NDArray[np.float64]

_INITIAL_ROWS = 64


class ISGD:
    """Incremental SGD matrix factorisation over (user, item) positive events.

    Each event (u, i) is one SGD step towards u·i = 1 (Algorithm 1 of the 2014 paper)::

        err = 1 - u·i
        u  += lr * (err * i - reg * u)
        i  += lr * (err * u_old - reg * i)

    followed, when `negatives > 0`, by the same step towards 0 for each of the `negatives`
    least recently interacted items (2015 paper; here all from the user vector after the
    positive step, one mini-batch), skipping the event's item and every item
    this user has interacted with; each one used moves to the back of the recency queue.

    Parameters
    ----------
    n_factors
        Length of the user and item vectors.
    learning_rate
        SGD step size (the paper's eta).
    regularization
        L2 penalty on both vectors (the paper's lambda).
    negatives
        Negative updates after each positive one; 0 is plain ISGD.
    init_std
        New vectors are drawn from N(0, init_std²), as in the paper.
    bias_learning_rate
        Step size of a per-item bias b_i added to u·i (0: none, the paper's model): it learns
        popularity (Koren, Bell & Volinsky, IEEE Computer 2009), so a new user gets the
        items with the largest bias instead of nothing.
    seed
        Seed of the one `numpy.random.default_rng` that draws every new vector, in order of
        first sight (on a learn, the user before the item): the same events in the same
        order always give the same factors.

    Memory, 10 factors: per item 8·n_factors bytes in the factor array (up to twice that
    right after a doubling) and the bias, plus ≈ 130 bytes of bookkeeping; per user ≈ 450
    bytes plus ≈ 57 bytes per distinct item interacted with (skipped as its negatives).

    The defaults are the paper's; Tailor's settings (`tailor.state.recs.settings`) and why:
    docs/decisions/0020-isgd-fism-settings.md.
    """

    def __init__(
        self,
        n_factors: int = 10,
        learning_rate: float = 0.05,
        regularization: float = 0.01,
        negatives: int = 0,
        init_std: float = 0.1,
        bias_learning_rate: float = 0.0,
        seed: int = 42,
    ) -> None:
        if n_factors < 1:
            raise ValueError("n_factors must be >= 1")
        if learning_rate <= 0 or regularization < 0 or init_std < 0 or bias_learning_rate < 0:
            raise ValueError(
                "learning_rate must be > 0, regularization, init_std and bias_learning_rate >= 0"
            )
        if negatives < 0:
            raise ValueError("negatives must be >= 0")
        self.n_factors = n_factors
        self.learning_rate = learning_rate
        self.regularization = regularization
        self.negatives = negatives
        self.init_std = init_std
        self.bias_learning_rate = bias_learning_rate
        self.seed = seed
        self._rng = np.random.default_rng(seed)
        # One contiguous array, so scoring every item for a user is a single matvec.
        self._items: FloatArray = np.zeros((_INITIAL_ROWS, n_factors), dtype=np.float64)
        self._bias: FloatArray = np.zeros(_INITIAL_ROWS, dtype=np.float64)
        self._item_row: dict[str, int] = {}
        self._item_ids: list[str] = []
        self._users: dict[str, FloatArray] = {}
        self._seen: dict[str, set[int]] = {}
        # Item rows from least to most recently interacted; OrderedDict gives O(1)
        # move-to-back and ordered iteration from the front.
        self._queue: OrderedDict[int, None] = OrderedDict()

    # ------------------------------------------------------------------ learning

    def add(self, user: str, item: str) -> None:
        """One positive ISGD step for (user, item), then the recency negatives."""
        u = self._user(user)
        row = self._row(item)
        self._step(u, row, 1.0)
        seen = self._seen[user]
        seen.add(row)
        self._queue.move_to_end(row)
        if self.negatives:
            rows = self._pick_negatives(seen)
            if rows:
                self._negative_steps(u, rows)
            for negative in rows:
                self._queue.move_to_end(negative)

    def _step(self, u: FloatArray, row: int, target: float) -> None:
        """SGD towards u·i + b_i = target; the deltas use the old values (u_old in the paper)."""
        v = self._items[row]  # a view: updated in place
        lr, reg = self.learning_rate, self.regularization
        err = target - float(u @ v) - self._bias[row]
        du = lr * (err * v - reg * u)
        v += lr * (err * u - reg * v)
        u += du
        self._bias[row] += self.bias_learning_rate * (err - reg * self._bias[row])

    def _negative_steps(self, u: FloatArray, rows: list[int]) -> None:
        """The steps towards 0 for `rows`, all taken from the user vector as it stood after
        the positive step (one small mini-batch: a matrix product instead of a Python loop
        of vector operations; with one negative, exactly the sequential step)."""
        lr, reg = self.learning_rate, self.regularization
        index = np.array(rows)  # converted once for the four fancy-indexing operations
        v = self._items[index]  # a copy
        bias = self._bias[index]
        err = -(v @ u) - bias
        du = lr * (err @ v - len(rows) * reg * u)
        self._items[index] = v + lr * (err[:, None] * u - reg * v)  # the outer product
        self._bias[index] = bias + self.bias_learning_rate * (err - reg * bias)
        u += du

    def _pick_negatives(self, seen: set[int]) -> list[int]:
        """The `negatives` least recently interacted rows this user has not touched.

        Skipped rows are all in `seen`, so the scan stops after at most
        `negatives + len(seen)` rows however many items there are.
        """
        picked: list[int] = []
        want = self.negatives
        for row in self._queue:
            if row not in seen:
                picked.append(row)
                if len(picked) == want:
                    break
        return picked

    def _user(self, user: str) -> FloatArray:
        """The user's vector, drawn from N(0, init_std²) on first sight."""
        u = self._users.get(user)
        if u is None:
            u = self._users[user] = self._draw()
            self._seen[user] = set()
        return u

    def _row(self, item: str) -> int:
        """The item's row, appended (drawn, and queued at the back) on first sight."""
        row = self._item_row.get(item)
        if row is None:
            row = self._append_item(item, self._draw())
        return row

    def _append_item(self, item: str, vector: FloatArray) -> int:
        """Add `item` as the next row, doubling the array when it is full (amortised O(1))."""
        row = len(self._item_ids)
        if row == len(self._items):
            grown = np.zeros((2 * len(self._items), self.n_factors), dtype=np.float64)
            grown[:row] = self._items
            self._items = grown
            self._bias = np.concatenate([self._bias, np.zeros(len(self._bias))])
        self._items[row] = vector
        self._bias[row] = 0.0
        self._item_row[item] = row
        self._item_ids.append(item)
        self._queue[row] = None
        return row

    def _draw(self) -> FloatArray:
        return self._rng.normal(0.0, self.init_std, self.n_factors)

    # ------------------------------------------------------------------ serving

    def recommend(self, user: str, k: int, exclude: Collection[str]) -> list[tuple[str, float]]:
        """Top `k` (item, u·i + b_i) for `user`, best first, ties to the smaller item id.

        A read only. An unknown user gets the items with the largest bias, or [] without
        biases (no vector yet: the caller decides the fallback). `argpartition` finds the
        k-th best score in O(n); every item scoring at least that much (k, plus ties) is then
        sorted by (-score, id), so ties at the cut-off are settled by id, not by array
        position.
        """
        u = self._users.get(user)
        if k <= 0 or (u is None and not self.bias_learning_rate):
            return []
        n = len(self._item_ids)
        scores = self._bias[:n].copy() if u is None else self._items[:n] @ u + self._bias[:n]
        return top_k(scores, self._item_ids, self._item_row, k, exclude)

    def score(self, user: str, items: Sequence[str]) -> list[float]:
        """u·i + b_i for each item (0.0 for an unknown item; b_i alone for an unknown user):
        the model's opinion of candidates another model proposed, one small matvec."""
        u = self._users.get(user)
        if not items:
            return []
        rows = [self._item_row.get(item, -1) for item in items]
        index = np.array(rows)
        scores = self._bias[index] if u is None else self._items[index] @ u + self._bias[index]
        return [0.0 if row < 0 else float(s) for row, s in zip(rows, scores.tolist(), strict=True)]

    # ------------------------------------------------------------------ state

    def forget_user(self, user: str) -> bool:
        """Erase the user's vector and interaction set; True when the user was known.

        Item vectors keep what this user's events taught them: those are shared by all
        users and cannot be unmixed, and hold no per-user record.
        """
        self._seen.pop(user, None)
        return self._users.pop(user, None) is not None

    @property
    def n_items(self) -> int:
        return len(self._item_ids)

    @property
    def n_users(self) -> int:
        return len(self._users)

    def user_factors(self, user: str) -> FloatArray | None:
        """A copy of the user's vector, or None when unknown."""
        u = self._users.get(user)
        return None if u is None else u.copy()

    def item_bias(self, item: str) -> float | None:
        """The item's bias (0.0 while `bias_learning_rate` is 0), or None when unknown."""
        row = self._item_row.get(item)
        return None if row is None else float(self._bias[row])

    def item_factors(self, item: str) -> FloatArray | None:
        """A copy of the item's vector, or None when unknown."""
        row = self._item_row.get(item)
        return None if row is None else self._items[row].copy()

    def set_user_factors(self, user: str, vector: Sequence[float] | FloatArray) -> None:
        """Set (or create with) a given vector: warm starts, and hand-checked tests."""
        self._user(user)[:] = self._checked(vector)

    def set_item_factors(self, item: str, vector: Sequence[float] | FloatArray) -> None:
        """Set a given vector; a new item is added at the back of the recency queue."""
        checked = self._checked(vector)
        row = self._item_row.get(item)
        if row is None:
            self._append_item(item, checked)
        else:
            self._items[row] = checked

    def seen(self, user: str) -> set[str]:
        """Items the user has interacted with (skipped as its negatives; an `exclude` too)."""
        ids = self._item_ids
        return {ids[row] for row in self._seen.get(user, ())}

    def recency_queue(self) -> list[str]:
        """Item ids from least to most recently interacted (the negatives come from the front)."""
        return [self._item_ids[row] for row in self._queue]

    def _checked(self, vector: Sequence[float] | FloatArray) -> FloatArray:
        array = np.asarray(vector, dtype=np.float64)
        if array.shape != (self.n_factors,):
            raise ValueError(f"expected a vector of {self.n_factors} factors, got {array.shape}")
        return array

    def to_snapshot(self) -> dict[str, Any]:
        """Settings, the generator's state, and the factors packed: one item matrix, one user
        matrix (not one small array per user: pickling those one by one, and collecting them
        afterwards, was most of a snapshot's time), each user's touched rows end to end."""
        n = len(self._item_ids)
        users = list(self._users)
        seen = [self._seen[user] for user in users]
        settings = ("n_factors", "learning_rate", "regularization", "negatives", "init_std")
        return {
            **{name: getattr(self, name) for name in settings},
            "bias_learning_rate": self.bias_learning_rate,
            "seed": self.seed,
            "rng": self._rng.bit_generator.state,
            "item_ids": list(self._item_ids),
            "items": self._items[:n].copy(),
            "bias": self._bias[:n].copy(),
            "queue": np.fromiter(self._queue, np.int64, len(self._queue)),
            "users": users,
            "user_factors": np.array([self._users[user] for user in users]).reshape(
                len(users), self.n_factors
            ),
            "seen_sizes": np.fromiter(map(len, seen), np.int64, len(seen)),
            "seen_rows": np.fromiter(
                itertools.chain.from_iterable(seen), np.int64, sum(map(len, seen))
            ),
        }

    @classmethod
    def from_snapshot(cls, data: Mapping[str, Any]) -> ISGD:
        settings = ("n_factors", "learning_rate", "regularization", "negatives", "init_std")
        made = cls(
            **{name: data[name] for name in settings},
            bias_learning_rate=data["bias_learning_rate"],
            seed=data["seed"],
        )
        made._rng.bit_generator.state = data["rng"]
        ids: list[str] = list(data["item_ids"])
        rows = max(_INITIAL_ROWS, len(ids))
        made._items = np.zeros((rows, made.n_factors), dtype=np.float64)
        made._items[: len(ids)] = data["items"]
        made._bias = np.zeros(rows, dtype=np.float64)
        made._bias[: len(ids)] = data["bias"]
        made._item_ids = ids
        made._item_row = {item: row for row, item in enumerate(ids)}
        made._queue = OrderedDict.fromkeys(data["queue"].tolist())
        factors = np.array(data["user_factors"], dtype=np.float64)  # rows: each user's own
        made._users = dict(zip(data["users"], factors, strict=True))
        bounds = np.concatenate([[0], np.cumsum(data["seen_sizes"])]).tolist()
        seen_rows = data["seen_rows"].tolist()
        made._seen = {
            user: set(seen_rows[start:end])
            for user, (start, end) in zip(data["users"], itertools.pairwise(bounds), strict=True)
        }
        return made


class ISGDRecommender(Recommender):
    """ISGD as a `Recommender`: personal, but blind for new users (the `isgd` model of
    stores written before FISM replaced it, resumed as it was)."""

    reason = "liked by people with your taste"

    def __init__(self, model: ISGD) -> None:
        self.model = model

    def learn_one(
        self, event: Interaction, history: Sequence[str], exclude: Collection[str] = ()
    ) -> None:
        self.model.add(event.user, event.item)  # binary: weight is no step count (decision 0020)

    def recommend(
        self, user: str, history: Sequence[str], ts: float, k: int, exclude: Collection[str]
    ) -> list[Scored]:
        return self.model.recommend(user, k, exclude)

    def score(self, user: str, history: Sequence[str], items: Sequence[str]) -> list[float]:
        return self.model.score(user, items)

    def why(self, user: str, history: Sequence[str], items: Sequence[str]) -> list[str]:
        return [self.reason] * len(items)

    def forget(self, user: str, history: Sequence[str]) -> None:
        """The user's factor vector and interaction set go."""
        self.model.forget_user(user)

    def to_snapshot(self) -> dict[str, Any]:
        return {"kind": type(self).__name__, "model": self.model.to_snapshot()}

    @classmethod
    def from_snapshot(
        cls, data: Mapping[str, Any], parts: Mapping[str, Recommender] | None = None
    ) -> Self:
        return cls(ISGD.from_snapshot(data["model"]))
