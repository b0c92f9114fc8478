"""The verbs every recommender shares, so replay evaluation and the live flow drive them alike.

Each model has its own file and its own natural API (`Trending.top`, `CoOccurrence.recommend`
from a history, ...). What a prequential replay needs is one shape: *recommend* for a user from
what is known before an interaction, then *learn* the interaction. The per-user state step
already keeps each user's recent items (`history`, oldest first), so models read it from there
instead of keeping per-user copies of their own.

>>> model = MostPopular()
>>> for user, item in [("u1", "a"), ("u2", "a"), ("u2", "b")]:
...     model.learn_one(user, item, 0.0, ())
>>> [item for item, _ in model.recommend("u3", (), 0.0, 2, set())]
['a', 'b']
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from typing import Protocol

from state.cooccurrence import CoOccurrence
from state.isgd import ISGD
from state.trending import Trending

__all__ = [
    "CoocRecommender",
    "ISGDRecommender",
    "MostPopular",
    "Recommender",
    "Scored",
    "TrendingRecommender",
]

Scored = tuple[str, float]


class Recommender(Protocol):
    """Learn one positive interaction; recommend the top `k` for a user."""

    def learn_one(self, user: str, item: str, ts: float, history: Sequence[str]) -> None:
        """Learn that `user` interacted with `item` at `ts`; `history` is before it."""

    def recommend(
        self, user: str, history: Sequence[str], ts: float, k: int, exclude: Collection[str]
    ) -> list[Scored]:
        """The best `k` (item, score), best first, none of them in `exclude`."""
        ...


class TrendingRecommender:
    """Decayed popularity in event time (`state.trending`): the same list for everyone."""

    def __init__(self, halflife_s: float = 86400.0, cache_size: int = 200) -> None:
        self.trending = Trending(halflife_s, cache_size)

    def learn_one(self, user: str, item: str, ts: float, history: Sequence[str]) -> None:
        self.trending.learn_one(item, ts)

    def recommend(
        self, user: str, history: Sequence[str], ts: float, k: int, exclude: Collection[str]
    ) -> list[Scored]:
        return self.trending.top(k, exclude)


class MostPopular(TrendingRecommender):
    """All-time popularity (no decay): the baseline every streaming recommender is held to."""

    def __init__(self, cache_size: int = 200) -> None:
        super().__init__(math.inf, cache_size)


class CoocRecommender:
    """Item-to-item co-occurrence from the user's recent items; `fill` completes the list.

    Filling matters on its own: a user's first event has no history, and an item with few
    neighbours leaves the list short; an empty slot can never be a hit. Inside a hybrid the
    other components fill instead (`fill=None`).
    """

    def __init__(self, cooc: CoOccurrence, fill: Recommender | None = None) -> None:
        self.cooc = cooc
        self.fill = fill

    def learn_one(self, user: str, item: str, ts: float, history: Sequence[str]) -> None:
        self.cooc.learn_one(history, item)
        if self.fill is not None:
            self.fill.learn_one(user, item, ts, history)

    def recommend(
        self, user: str, history: Sequence[str], ts: float, k: int, exclude: Collection[str]
    ) -> list[Scored]:
        recs = self.cooc.recommend(history, k, exclude)
        if len(recs) < k and self.fill is not None:
            taken = set(exclude) | {item for item, _ in recs}
            recs += self.fill.recommend(user, history, ts, k - len(recs), taken)
        return recs


class ISGDRecommender:
    """Incremental matrix factorisation (`state.isgd`): personal, but blind for new users."""

    def __init__(self, model: ISGD) -> None:
        self.model = model

    def learn_one(self, user: str, item: str, ts: float, history: Sequence[str]) -> None:
        self.model.learn_one(user, item)

    def recommend(
        self, user: str, history: Sequence[str], ts: float, k: int, exclude: Collection[str]
    ) -> list[Scored]:
        return self.model.recommend(user, k, exclude)
