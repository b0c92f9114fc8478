"""Incremental item-to-item co-occurrence: "people who touched these also touched that".

Each new interaction pairs the item with the distinct items the user touched just before
it, so the model learns from the stream with no batch job and no user-item matrix. Scores are
normalised like a cosine, cooc(h, j) / sqrt(count(h) * count(j)), so a best-seller that sits
next to everything does not drown out the items that specifically go together.

Recency weighting: the history item `age` steps before the newest gets weight
`1 / (1 + age)` (the newest 1, the one before 1/2, ...) by default, or `recency ** age` when
`recency` is given; and only the last `score_window` items are scored. What pairs are learned
from (`window`) and what a recommendation reads (`score_window`) are separate: many pairs make
the counts robust, while the next item follows the user's latest few items most closely.

>>> model = CoOccurrence()
>>> sessions = [["a", "b"], ["a", "c"], ["a", "b"]]
>>> for items in sessions:
...     for i, item in enumerate(items):
...         model.learn_one(items[:i], item)
>>> [(item, round(score, 4)) for item, score in model.recommend(["a"], k=2, exclude=["a"])]
[('b', 0.8165), ('c', 0.5774)]
"""

from __future__ import annotations

import bisect
import heapq
from collections import _count_elements  # type: ignore[attr-defined]
from collections.abc import Collection, Iterable, Sequence
from operator import itemgetter

__all__ = ["CoOccurrence"]

_ID, _COUNT = itemgetter(0), itemgetter(1)


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
        (and scored while recommending, unless `score_window` says otherwise).
    score_window
        How many of the most recent history items a recommendation is scored from.
    recency
        Weight base per step of age while scoring (`recency ** age`); None: `1 / (1 + age)`.
    alpha
        Popularity damping of a candidate j: scores are cooc(h, j) / (count(h)^(1-alpha) *
        count(j)^alpha). 0.5 is the cosine; 0 the conditional probability P(j | h), which
        favours popular candidates (they co-occur with everything).
    """

    def __init__(
        self,
        max_neighbors: int = 100,
        window: int = 10,
        score_window: int | None = None,
        recency: float | None = None,
        alpha: float = 0.5,
    ) -> None:
        if max_neighbors < 1 or window < 1 or (score_window is not None and score_window < 1):
            raise ValueError("max_neighbors, window and score_window must be >= 1")
        if recency is not None and not 0.0 < recency <= 1.0:
            raise ValueError("recency must be in (0, 1]")
        self.max_neighbors = max_neighbors
        self.window = window
        self.score_window = window if score_window is None else score_window
        self.recency = recency
        self.alpha = alpha

        # integer counts: small ints are shared objects, so counting allocates nothing
        self._cooc: dict[str, dict[str, int]] = {}
        self._count: dict[str, int] = {}
        # 1/sqrt(count) per item, kept in step with `_count`: the cosine normaliser is read
        # for every candidate while recommending, and changes only for the learned item.
        self._inv_norm: dict[str, float] = {}

    def learn_one(self, previous: Sequence[str], item: str) -> None:
        """Count `item` once and pair it, both ways, with each distinct recent previous item.

        The hottest loop of the models step: the item's own side is counted in C
        (`_count_elements`, what `Counter.update` uses), the other side costs three
        dict operations per neighbour.
        """
        cooc, limit = self._cooc, 2 * self.max_neighbors
        count = self._count[item] = self._count.get(item, 0) + 1
        self._inv_norm[item] = count**-self.alpha
        mine = cooc.get(item)
        if mine is None:
            mine = cooc[item] = {}
        recent = _distinct(previous[-self.window :], item)
        _count_elements(mine, recent)
        for other in recent:
            try:
                theirs = cooc[other]
            except KeyError:  # only for an item never learned itself
                theirs = cooc[other] = {}
            theirs[item] = theirs.get(item, 0) + 1
            if len(theirs) > limit:
                self._prune(other)
        if len(mine) > limit:
            self._prune(item)

    def _prune(self, item: str) -> None:
        """Keep the strongest `max_neighbors` neighbours, ties to the smaller id.

        Pruning runs often for popular items, so every step is a C-level call: one sort by
        count finds the cut-off, the entries above it stay, and only the ids tied at the
        cut-off (found by bisection) are sorted to fill the remaining places.
        """
        keep = self.max_neighbors
        ranked = sorted(self._cooc[item].items(), key=_COUNT)  # ascending counts
        cutoff = ranked[len(ranked) - keep][1]
        low = bisect.bisect_left(ranked, cutoff, key=_COUNT)
        high = bisect.bisect_right(ranked, cutoff, key=_COUNT)
        kept = dict(ranked[high:])
        tied = sorted(map(_ID, ranked[low:high]))
        kept.update(dict.fromkeys(tied[: keep - len(kept)], cutoff))
        self._cooc[item] = kept

    def unlearn_history(self, history: Sequence[str]) -> None:
        """Take back what a forgotten user's `history` taught, as far as that history reaches.

        Replays the learning in reverse: each item's count, and its pairs with the items
        within `window` before it. Pairs formed with items the history no longer holds (older
        than `history_len`, or pruned since) cannot be found and stay; they are anonymous
        counts among many users' counts. Counts never go below zero.
        """
        recent = list(history)
        for index, item in enumerate(recent):
            self._decrement_count(item)
            for other in _distinct(recent[max(0, index - self.window) : index], item):
                self._decrement_pair(item, other)
                self._decrement_pair(other, item)

    def _decrement_count(self, item: str) -> None:
        count = self._count.get(item, 0) - 1
        if count > 0:
            self._count[item] = count
            self._inv_norm[item] = count**-self.alpha
        elif item in self._count:
            del self._count[item]
            self._inv_norm.pop(item, None)
            for other in self._cooc.pop(item, {}):
                self._cooc.get(other, {}).pop(item, None)

    def _decrement_pair(self, a: str, b: str) -> None:
        neighbours = self._cooc.get(a)
        if neighbours is None or b not in neighbours:
            return
        if neighbours[b] > 1:
            neighbours[b] -= 1
        else:
            del neighbours[b]

    def count(self, item: str) -> int:
        """How many times `item` was learned (0 when never)."""
        return self._count.get(item, 0)

    def cooc(self, a: str, b: str) -> int:
        """How many times `a` and `b` were paired (0 when never, or pruned)."""
        return self._cooc.get(a, {}).get(b, 0)

    def neighbors(self, item: str) -> dict[str, int]:
        """A copy of `item`'s neighbour counts."""
        return dict(self._cooc.get(item, {}))

    def recommend(
        self, history: Sequence[str], k: int, exclude: Iterable[str] = ()
    ) -> list[tuple[str, float]]:
        """Top `k` (item, score) for a user whose recent items are `history` (oldest first).

        A read only: unknown items are skipped, nothing is created. Ties go to the smaller id.
        """
        if k <= 0:
            return []
        scores: dict[str, float] = {}
        get = scores.get
        h_power = self.alpha - 1.0
        for h, weight in self._weights(history).items():
            neighbours = self._cooc.get(h)
            if not neighbours:
                continue
            base = weight * self._count[h] ** h_power
            if self.alpha == 0.0:  # P(j | h): no per-candidate normaliser to look up
                for j, c in neighbours.items():
                    scores[j] = get(j, 0.0) + base * c
            else:
                norm = self._inv_norm
                for j, c in neighbours.items():
                    scores[j] = get(j, 0.0) + base * c * norm[j]
        return _top(_without(scores, exclude), k)

    def explain(self, history: Sequence[str], item: str) -> str | None:
        """The recent item that contributed most to `item`'s score (None if none did).

        Asked only for the k items finally recommended, so a reason costs k × window lookups
        instead of bookkeeping for every candidate while scoring.
        """
        h_power = self.alpha - 1.0
        best: tuple[float, str] | None = None
        for h, weight in self._weights(history).items():
            count = self._cooc.get(h, {}).get(item)
            if count:
                gain = weight * count * self._count[h] ** h_power
                if best is None or gain > best[0] or (gain == best[0] and h < best[1]):
                    best = (gain, h)
        return None if best is None else best[1]

    def _weights(self, history: Sequence[str]) -> dict[str, float]:
        """Weight of each distinct recent item, by the age of its most recent occurrence."""
        weights: dict[str, float] = {}
        recent = history[-self.score_window :]
        base = self.recency
        for age, h in enumerate(reversed(recent)):
            if h not in weights:
                weights[h] = 1.0 / (1.0 + age) if base is None else base**age
        return weights

    def __len__(self) -> int:
        return len(self._count)


def _top(scores: dict[str, float], k: int) -> list[tuple[str, float]]:
    """The `k` best (item, score), ties to the smaller id.

    A key function building (-score, id) for every candidate costs more than the scoring;
    `nlargest` over the bare floats finds the k-th score, and only candidates at or above
    it (k, plus ties) are ranked by (-score, id).
    """
    best = heapq.nlargest(k, scores.values())
    if not best:
        return []
    cutoff = best[-1]
    ranked = sorted((-score, j) for j, score in scores.items() if score >= cutoff)
    return [(j, -neg) for neg, j in ranked[:k]]


def _without(scores: dict[str, float], exclude: Iterable[str]) -> dict[str, float]:
    """`scores` minus `exclude`, walking whichever is smaller (a heavy user excludes
    thousands of items; a short history proposes a few hundred)."""
    if not isinstance(exclude, Collection) or len(exclude) < len(scores):
        for j in exclude:
            scores.pop(j, None)
        return scores
    return {j: score for j, score in scores.items() if j not in exclude}


def _distinct(recent: Sequence[str], item: str) -> Sequence[str]:
    """`recent` without repeats and without `item`, first occurrence kept.

    A user's history is already an ordered set without the new item, so the check is one
    set build and the copy is only made for other callers.
    """
    if item not in recent and len(set(recent)) == len(recent):
        return recent
    seen = {item}
    out = []
    for other in recent:
        if other not in seen:
            seen.add(other)
            out.append(other)
    return out
