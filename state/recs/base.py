"""The verbs every recommender shares, so replay evaluation and the live flow drive them alike.

What a prequential replay and the live models step need is one shape: *recommend* for a user
from what is known before an interaction, then *learn* the interaction; *score* another
model's candidates; say *why* an item was recommended; *forget* a user who asked to be
erased; and a snapshot as plain data. `Recommender` is an abstract base class fixing those
verbs (as River's `reco.base.Recommender` does), so a model missing one cannot be built; each
model implements it in its own file (`tailor.state.recs.trending`, `tailor.state.recs.cooccurrence`,
`tailor.state.recs.isgd`,
`tailor.state.recs.fism_recommender`, `tailor.state.recs.group_trending`,
`tailor.state.recs.hybrid`). The per-user state step already keeps each user's recent items
(`history`, oldest first), so models read it from there instead of keeping per-user copies of their
own.

>>> from tailor.state.recs.trending import MostPopular
>>> model = MostPopular()
>>> for user, item in [("u1", "a"), ("u2", "a"), ("u2", "b")]:
...     model.learn_one(Interaction(user, item, 0.0), ())
>>> [item for item, _ in model.recommend("u3", (), 0.0, 2, set())]
['a', 'b']
>>> model.why("u3", (), ["a"])
['popular']
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, Self, runtime_checkable

__all__ = [
    "BatchLearner",
    "Interaction",
    "Ranker",
    "Recommender",
    "Scored",
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


class Recommender(ABC):
    """Learn one positive interaction; recommend the top `k` for a user; say why."""

    @abstractmethod
    def learn_one(
        self, event: Interaction, history: Sequence[str], exclude: Collection[str] = ()
    ) -> None:
        """Learn `event`; `history` is the user's recent items before it, oldest first, and
        `exclude` what a recommendation for the user would leave out just now (a model that
        tests itself before learning, test-then-train, needs it; the others ignore it)."""

    @abstractmethod
    def recommend(
        self, user: str, history: Sequence[str], ts: float, k: int, exclude: Collection[str]
    ) -> list[Scored]:
        """The best `k` (item, score), best first, none of them in `exclude`."""

    @abstractmethod
    def score(self, user: str, history: Sequence[str], items: Sequence[str]) -> list[float]:
        """The model's score of each of `items` (another model's candidates; higher is better)."""

    @abstractmethod
    def why(self, user: str, history: Sequence[str], items: Sequence[str]) -> list[str]:
        """A short reason for the user per item ("viewed with X"), asked only for the items
        recommended, all of one list at once."""

    @abstractmethod
    def forget(self, user: str, history: Sequence[str]) -> None:
        """Erasure: drop what is kept about `user` (aggregates over everyone stay)."""

    @abstractmethod
    def to_snapshot(self) -> dict[str, Any]:
        """Plain data, with `"kind"`: the class name (`tailor.state.recs.settings.restore`)."""

    @classmethod
    @abstractmethod
    def from_snapshot(
        cls, data: Mapping[str, Any], parts: Mapping[str, Recommender] | None = None
    ) -> Self:
        """The model `to_snapshot` gave `data`; `parts` are the models nested in it (a
        hybrid's components, a fill), rebuilt by the caller, which knows every kind."""


@runtime_checkable
class Ranker(Protocol):
    """A recommender that can say where one item stands in its list without building it:
    the hybrid's probes need only the next item's rank (`tailor.state.recs.top_k.rank_in_top_k`)."""

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
