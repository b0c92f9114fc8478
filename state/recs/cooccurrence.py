"""The co-occurrence recommender: the items most often touched with the user's recent ones.

The counts are `tailor.state.recs.cooc_counts.CoOccurrence`; this is the `Recommender` over them,
with a
`fill` that completes a short list.

>>> from tailor.state.recs.trending import MostPopular
>>> model = CoocRecommender(CoOccurrence(), MostPopular())
>>> for user, items in [("u1", ["a", "b"]), ("u2", ["a", "c"]), ("u3", ["a", "b"])]:
...     for i, item in enumerate(items):
...         model.learn_one(Interaction(user, item, 0.0), items[:i])
>>> [item for item, _ in model.recommend("u4", ["a"], 0.0, 3, {"a"})]
['b', 'c']
>>> model.why("u4", ["a"], ["b"])
['viewed with a']
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any, Self

from tailor.state import increments
from tailor.state.recs.base import Interaction, Recommender, Scored, learn_batch
from tailor.state.recs.cooc_counts import CoOccurrence

__all__ = ["CoocRecommender"]


class CoocRecommender(Recommender):
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
        self.cooc.add(history, event.item, event.weight)
        if self.fill is not None:
            self.fill.learn_one(event, history, exclude)

    def learn_many(
        self,
        events: Sequence[Interaction],
        histories: Sequence[Sequence[str]],
        excludes: Sequence[Collection[str]],
    ) -> None:
        """The counts of the whole batch in one compiled step (`CoOccurrence.add_many`),
        exactly as one by one; then the fill's (the two models share nothing)."""
        self.cooc.add_many(
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
        cls, data: Mapping[str, Any], parts: Mapping[str, Recommender] | None = None
    ) -> Self:
        """`parts["fill"]` rebuilt by the caller from `data["fill"]` (when there is one)."""
        fill = None if parts is None else parts.get("fill")
        if data["fill"] is not None and fill is None:
            raise ValueError("a co-occurrence snapshot with a fill needs it rebuilt (`parts`)")
        return cls(CoOccurrence.from_snapshot(data["cooc"]), fill)
