"""Incremental item-to-item co-occurrence: "people who touched these also touched that".

Each new interaction pairs the item with the distinct items the user touched just before
it, so the model learns from the stream with no batch job and no user-item matrix. Scores are
normalised like a cosine, cooc(h, j) / sqrt(count(h) * count(j)), so a best-seller that sits
next to everything does not drown out the items that specifically go together.

Recency weighting: the history item `age` steps before the newest gets weight
`1 / (1 + age)` (the newest 1, the one before 1/2, ...). A harmonic weight keeps older items
in play (0.9**age would too, but fades them faster over the default 20-item window), while
still letting the user's latest interest lead.

>>> model = CoOccurrence()
>>> sessions = [["a", "b"], ["a", "c"], ["a", "b"]]
>>> for items in sessions:
...     for i, item in enumerate(items):
...         model.learn_one(items[:i], item)
>>> [(item, round(score, 4)) for item, score in model.recommend(["a"], k=2, exclude=["a"])]
[('b', 0.8165), ('c', 0.5774)]
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Collection, Sequence
from operator import itemgetter

__all__ = ["CoOccurrence"]


class CoOccurrence:
    """Item-to-item co-occurrence counts over recent user histories.

    Parameters
    ----------
    max_neighbors
        Neighbours kept per item. An item's neighbour dict is pruned back to this many (by
        count, then id: deterministic) once it grows past twice the cap, so pruning cost is
        amortised and memory stays bounded by `2 * max_neighbors` per item.
    window
        How many of the most recent history items are paired with a new item while learning
        and scored while recommending.
    """

    def __init__(self, max_neighbors: int = 100, window: int = 10) -> None:
        if max_neighbors < 1 or window < 1:
            raise ValueError("max_neighbors and window must be >= 1")
        self.max_neighbors = max_neighbors
        self.window = window
        self._cooc: dict[str, dict[str, float]] = {}
        self._count: dict[str, float] = {}
        # 1/sqrt(count) per item, kept in step with `_count`: the cosine normaliser is read
        # for every candidate while recommending, and changes only for the learned item.
        self._inv_norm: dict[str, float] = {}

    def learn_one(self, previous: Sequence[str], item: str) -> None:
        """Count `item` once and pair it, both ways, with each distinct recent previous item."""
        cooc, limit = self._cooc, 2 * self.max_neighbors
        count = self._count[item] = self._count.get(item, 0.0) + 1.0
        self._inv_norm[item] = 1.0 / math.sqrt(count)
        mine = cooc.get(item)
        if mine is None:
            mine = cooc[item] = {}
        seen: set[str] = {item}
        for other in previous[-self.window :]:
            if other in seen:
                continue
            seen.add(other)
            mine[other] = mine.get(other, 0.0) + 1.0
            theirs = cooc.get(other)
            if theirs is None:
                theirs = cooc[other] = {}
            theirs[item] = theirs.get(item, 0.0) + 1.0
            if len(theirs) > limit:
                self._prune(other)
        if len(mine) > limit:
            self._prune(item)

    def _prune(self, item: str) -> None:
        """Keep the strongest neighbours, ties to the smaller id.

        Two C-level sorts (by id, then stably by count) instead of one with a Python key
        function building tuples: pruning runs often for popular items.
        """
        kept = sorted(self._cooc[item].items())
        kept.sort(key=itemgetter(1), reverse=True)
        self._cooc[item] = dict(kept[: self.max_neighbors])

    def count(self, item: str) -> float:
        """How many times `item` was learned (0 when never)."""
        return self._count.get(item, 0.0)

    def cooc(self, a: str, b: str) -> float:
        """How many times `a` and `b` were paired (0 when never, or pruned)."""
        return self._cooc.get(a, {}).get(b, 0.0)

    def neighbors(self, item: str) -> dict[str, float]:
        """A copy of `item`'s neighbour counts."""
        return dict(self._cooc.get(item, {}))

    def recommend(
        self, history: Sequence[str], k: int, exclude: Collection[str] = ()
    ) -> list[tuple[str, float]]:
        """Top `k` (item, score) for a user whose recent items are `history` (oldest first).

        A read only: unknown items are skipped, nothing is created. Ties go to the smaller id.
        """
        if k <= 0:
            return []
        weights = self._weights(history)
        excluded = exclude if isinstance(exclude, set | frozenset) else set(exclude)
        norm = self._inv_norm
        scores: dict[str, float] = {}
        get = scores.get
        for h, weight in weights.items():
            neighbours = self._cooc.get(h)
            if not neighbours:
                continue
            base = weight * norm[h]
            for j, c in neighbours.items():
                if j not in excluded:
                    scores[j] = get(j, 0.0) + base * c * norm[j]
        return heapq.nsmallest(k, scores.items(), key=lambda kv: (-kv[1], kv[0]))

    def _weights(self, history: Sequence[str]) -> dict[str, float]:
        """Weight of each distinct recent item: 1/(1+age) of its most recent occurrence."""
        weights: dict[str, float] = {}
        recent = history[-self.window :]
        for age, h in enumerate(reversed(recent)):
            if h not in weights:
                weights[h] = 1.0 / (1.0 + age)
        return weights

    def __len__(self) -> int:
        return len(self._count)
