"""The verbs every recommender shares, so replay evaluation and the live flow drive them alike.

Each model has its own file and its own natural API (`Trending.top`, `CoOccurrence.recommend`
from a history, ...). What a prequential replay and the live models step need is one shape:
*recommend* for a user from what is known before an interaction, then *learn* the interaction;
say *why* an item was recommended; *forget* a user who asked to be erased. The per-user state
step already keeps each user's recent items (`history`, oldest first), so models read it from
there instead of keeping per-user copies of their own.

>>> model = MostPopular()
>>> for user, item in [("u1", "a"), ("u2", "a"), ("u2", "b")]:
...     model.learn_one(Interaction(user, item, 0.0), ())
>>> [item for item, _ in model.recommend("u3", (), 0.0, 2, set())]
['a', 'b']
>>> model.why("u3", (), ["a"])
['popular']
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, Self, runtime_checkable

from state import increments
from state.cooccurrence import CoOccurrence
from state.isgd import ISGD
from state.trending import Trending

__all__ = [
    "BatchLearner",
    "CoocRecommender",
    "ISGDRecommender",
    "Interaction",
    "MostPopular",
    "Ranker",
    "Recommender",
    "Scored",
    "TrendingRecommender",
    "learn_batch",
]

Scored = tuple[str, float]


@dataclass(frozen=True, slots=True)
class Interaction:
    """One positive interaction: `weight` from its event type (a purchase may count as three
    views), `categories` as the event gave them (item metadata for category-based models)."""

    user: str
    item: str
    ts: float
    weight: int = 1
    categories: tuple[str, ...] = ()


class Recommender(Protocol):
    """Learn one positive interaction; recommend the top `k` for a user; say why."""

    def learn_one(
        self, event: Interaction, history: Sequence[str], exclude: Collection[str] = ()
    ) -> None:
        """Learn `event`; `history` is the user's recent items before it, oldest first, and
        `exclude` what a recommendation for the user would leave out just now (a model that
        tests itself before learning, test-then-train, needs it; the others ignore it)."""

    def recommend(
        self, user: str, history: Sequence[str], ts: float, k: int, exclude: Collection[str]
    ) -> list[Scored]:
        """The best `k` (item, score), best first, none of them in `exclude`."""
        ...

    def score(self, user: str, history: Sequence[str], items: Sequence[str]) -> list[float]:
        """The model's score of each of `items` (another model's candidates; higher is better)."""
        ...

    def why(self, user: str, history: Sequence[str], items: Sequence[str]) -> list[str]:
        """A short reason for the user per item ("viewed with X"), asked only for the items
        recommended, all of one list at once."""
        ...

    def forget(self, user: str, history: Sequence[str]) -> None:
        """Erasure: drop what is kept about `user` (aggregates over everyone stay)."""

    def to_snapshot(self) -> dict[str, Any]:
        """Plain data, with `"kind"`: the class name (`state.rec_settings.restore`)."""
        ...


@runtime_checkable
class Ranker(Protocol):
    """A recommender that can say where one item stands in its list without building it:
    the hybrid's probes need only the next item's rank (`state.top_k.rank_in_top_k`)."""

    def rank(
        self,
        user: str,
        history: Sequence[str],
        ts: float,
        k: int,
        exclude: Collection[str],
        item: str,
    ) -> int | None:
        """`item`'s rank (1..k) in `recommend(user, history, ts, k, exclude)`, 0 when it is
        not in it, None when that list would be shorter than `k`."""
        ...


@runtime_checkable
class BatchLearner(Protocol):
    """A recommender that learns a batch of interactions in one step (River's `learn_many`):
    what a model replica does with other workers' events, which it serves nobody from."""

    def learn_many(
        self,
        events: Sequence[Interaction],
        histories: Sequence[Sequence[str]],
        excludes: Sequence[Collection[str]],
    ) -> None:
        """Learn `events` in order, each after its history, as one step where that is cheaper
        (gradients from the parameters at the batch's start; counts exactly)."""


def learn_batch(
    model: Recommender,
    events: Sequence[Interaction],
    histories: Sequence[Sequence[str]],
    excludes: Sequence[Collection[str]],
) -> None:
    """`model.learn_many` where the model is a `BatchLearner`, else `learn_one` per event."""
    if isinstance(model, BatchLearner):
        model.learn_many(events, histories, excludes)
        return
    for event, history, exclude in zip(events, histories, excludes, strict=True):
        model.learn_one(event, history, exclude)


class TrendingRecommender:
    """Decayed popularity in event time (`state.trending`): the same list for everyone."""

    reason = "trending now"

    def __init__(self, halflife_s: float = 86400.0, cache_size: int = 200) -> None:
        self.trending = Trending(halflife_s, cache_size)

    def learn_one(
        self, event: Interaction, history: Sequence[str], exclude: Collection[str] = ()
    ) -> None:
        self.trending.learn_one(event.item, event.ts, event.weight)

    def recommend(
        self, user: str, history: Sequence[str], ts: float, k: int, exclude: Collection[str]
    ) -> list[Scored]:
        return self.trending.top(k, exclude)

    def score(self, user: str, history: Sequence[str], items: Sequence[str]) -> list[float]:
        return [self.trending.score(item) for item in items]

    def why(self, user: str, history: Sequence[str], items: Sequence[str]) -> list[str]:
        return [self.reason] * len(items)

    def forget(self, user: str, history: Sequence[str]) -> None:
        """Nothing per user: decayed counts over everyone."""

    def to_snapshot(self) -> dict[str, Any]:
        return {"kind": type(self).__name__, "trending": increments.part(self.trending)}

    @classmethod
    def from_snapshot(cls, data: Mapping[str, Any]) -> Self:
        made = cls.__new__(cls)
        made.trending = Trending.from_snapshot(data["trending"])
        return made


class MostPopular(TrendingRecommender):
    """All-time popularity (no decay): the baseline every streaming recommender is held to."""

    reason = "popular"

    def __init__(self, cache_size: int = 200) -> None:
        super().__init__(math.inf, cache_size)


class CoocRecommender:
    """Item-to-item co-occurrence from the user's recent items; `fill` completes the list.

    Filling matters on its own: a user's first event has no history, and an item with few
    neighbours leaves the list short; an empty slot can never be a hit. Inside a hybrid the
    hybrid's fallback chain fills instead (`fill=None`).
    """

    def __init__(self, cooc: CoOccurrence, fill: Recommender | None = None) -> None:
        self.cooc = cooc
        self.fill = fill

    def learn_one(
        self, event: Interaction, history: Sequence[str], exclude: Collection[str] = ()
    ) -> None:
        self.cooc.learn_one(history, event.item, event.weight)
        if self.fill is not None:
            self.fill.learn_one(event, history, exclude)

    def learn_many(
        self,
        events: Sequence[Interaction],
        histories: Sequence[Sequence[str]],
        excludes: Sequence[Collection[str]],
    ) -> None:
        """The counts of the whole batch in one compiled step (`CoOccurrence.learn_many`),
        exactly as one by one; then the fill's (the two models share nothing)."""
        self.cooc.learn_many(
            histories, [event.item for event in events], [event.weight for event in events]
        )
        if self.fill is not None:
            learn_batch(self.fill, events, histories, excludes)

    def recommend(
        self, user: str, history: Sequence[str], ts: float, k: int, exclude: Collection[str]
    ) -> list[Scored]:
        recs = self.cooc.recommend(history, k, exclude)
        if len(recs) < k and self.fill is not None:
            taken = set(exclude) | {item for item, _ in recs}
            recs += self.fill.recommend(user, history, ts, k - len(recs), taken)
        return recs

    def score(self, user: str, history: Sequence[str], items: Sequence[str]) -> list[float]:
        return self.cooc.score(history, items)

    def why(self, user: str, history: Sequence[str], items: Sequence[str]) -> list[str]:
        viewed = self.cooc.explain(history, items)
        filled = [item for item, h in zip(items, viewed, strict=True) if h is None]
        fill = iter(
            self.fill.why(user, history, filled) if self.fill is not None and filled else []
        )
        return [f"viewed with {h}" if h is not None else next(fill, "") for h in viewed]

    def forget(self, user: str, history: Sequence[str]) -> None:
        """The user's pairs, as far as the kept history reaches (`unlearn_history`)."""
        self.cooc.unlearn_history(history)

    def to_snapshot(self) -> dict[str, Any]:
        fill = None if self.fill is None else self.fill.to_snapshot()
        return {"kind": type(self).__name__, "cooc": increments.part(self.cooc), "fill": fill}

    @classmethod
    def from_snapshot(
        cls, data: Mapping[str, Any], fill: Recommender | None = None
    ) -> CoocRecommender:
        """`fill` rebuilt by the caller from `data["fill"]` (it knows every model class)."""
        return cls(CoOccurrence.from_snapshot(data["cooc"]), fill)


class ISGDRecommender:
    """Incremental matrix factorisation (`state.isgd`): personal, but blind for new users."""

    reason = "liked by people with your taste"

    def __init__(self, model: ISGD) -> None:
        self.model = model

    def learn_one(
        self, event: Interaction, history: Sequence[str], exclude: Collection[str] = ()
    ) -> None:
        # Positive-only feedback is binary in ISGD: an event type's weight is not a step
        # count (docs/decisions/0020-isgd-fism-settings.md).
        self.model.learn_one(event.user, event.item)

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
    def from_snapshot(cls, data: Mapping[str, Any]) -> ISGDRecommender:
        return cls(ISGD.from_snapshot(data["model"]))
