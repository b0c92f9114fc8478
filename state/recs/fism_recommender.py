"""FISM (`tailor.state.recs.fism`, the model's parameters and steps) as a `Recommender`, with the
one extra a probe uses: the rank of the next item without building the list (`Ranker`)."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any, Self

from tailor.state import increments
from tailor.state.recs.base import Interaction, Recommender, Scored
from tailor.state.recs.fism import FISM

__all__ = ["FISMRecommender"]


class FISMRecommender(Recommender):
    """FISM as a `Recommender`: personal from the first history item, and the item biases
    (popularity) for a user with none."""

    reason = "liked by people with your taste"

    def __init__(self, model: FISM) -> None:
        self.model = model

    def learn_one(
        self, event: Interaction, history: Sequence[str], exclude: Collection[str] = ()
    ) -> None:
        # Positive-only feedback is binary: an event type's weight is not a step count
        # (docs/decisions/0020-isgd-fism-settings.md).
        self.model.learn_one(event.item, history, exclude)

    def learn_many(
        self,
        events: Sequence[Interaction],
        histories: Sequence[Sequence[str]],
        excludes: Sequence[Collection[str]],
    ) -> None:
        """A replica's batch of other workers' events (`tailor.state.recs.base.learn_batch`): one
        compiled call, exactly `learn_one` per event."""
        self.model.learn_many([event.item for event in events], histories, excludes)

    def recommend(
        self, user: str, history: Sequence[str], ts: float, k: int, exclude: Collection[str]
    ) -> list[Scored]:
        return self.model.recommend(history, k, exclude)

    def rank(
        self,
        user: str,
        history: Sequence[str],
        ts: float,
        k: int,
        exclude: Collection[str],
        item: str,
    ) -> int | None:
        return self.model.rank(history, k, exclude, item)

    def score(self, user: str, history: Sequence[str], items: Sequence[str]) -> list[float]:
        return self.model.score(history, items)

    def why(self, user: str, history: Sequence[str], items: Sequence[str]) -> list[str]:
        return [self.reason] * len(items)

    def forget(self, user: str, history: Sequence[str]) -> None:
        """Nothing per user is kept. What the user's events taught the item vectors and biases
        stays: each step mixed the user's items with everyone's gradients, so it cannot be
        subtracted later (as co-occurrence's pairs can), and none of it names the user."""

    def to_snapshot(self) -> dict[str, Any]:
        return {"kind": type(self).__name__, "model": increments.part(self.model)}

    @classmethod
    def from_snapshot(
        cls, data: Mapping[str, Any], parts: Mapping[str, Recommender] | None = None
    ) -> Self:
        return cls(FISM.from_snapshot(data["model"]))
