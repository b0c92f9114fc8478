"""Every recommender implements the `Recommender` base class; one missing a verb cannot be built."""

from __future__ import annotations

from collections.abc import Collection, Sequence

import pytest

from tailor.flows.config import load_config
from tailor.state.recs.base import Interaction, Recommender, Scored
from tailor.state.recs.settings import KINDS, MODELS, RecSettings, build, restore

#: The kinds stores written by the release before the base class hold (`to_snapshot`).
RELEASED_KINDS = {
    "MostPopular",
    "TrendingRecommender",
    "CoocRecommender",
    "FISMRecommender",
    "ISGDRecommender",
    "CategoryPopular",
    "SegmentTrending",
    "Hybrid",
}


def test_every_registered_kind_is_a_recommender() -> None:
    assert set(KINDS) >= RELEASED_KINDS
    for kind, cls in KINDS.items():
        assert issubclass(cls, Recommender), kind
        assert cls.__name__ == kind


def test_every_built_model_and_its_parts_are_recommenders_that_restore() -> None:
    settings = RecSettings.of(load_config(env={}).recs, seed=7)
    for name in MODELS:
        model = build(name, settings)
        assert isinstance(model, Recommender), name
        model.learn_one(Interaction("u", "a", 0.0, categories=("c",)), ())
        model.learn_one(Interaction("u", "b", 1.0, categories=("c",)), ("a",))
        data = model.to_snapshot()
        assert data["kind"] in RELEASED_KINDS
        again = restore(data)
        assert type(again) is type(model)
        assert again.recommend("v", ("a",), 1.0, 5, set()) == model.recommend(
            "v", ("a",), 1.0, 5, set()
        )


class _NoWhy(Recommender):
    """Every verb but `why`."""

    def learn_one(
        self, event: Interaction, history: Sequence[str], exclude: Collection[str] = ()
    ) -> None:
        pass

    def recommend(
        self, user: str, history: Sequence[str], ts: float, k: int, exclude: Collection[str]
    ) -> list[Scored]:
        return []

    def score(self, user: str, history: Sequence[str], items: Sequence[str]) -> list[float]:
        return [0.0] * len(items)

    def forget(self, user: str, history: Sequence[str]) -> None:
        pass

    def to_snapshot(self) -> dict[str, object]:
        return {"kind": "_NoWhy"}

    @classmethod
    def from_snapshot(cls, data, parts=None):  # type: ignore[no-untyped-def]
        return cls()


def test_a_recommender_missing_a_verb_cannot_be_built() -> None:
    with pytest.raises(TypeError, match="why"):
        _NoWhy()  # type: ignore[abstract]


def test_an_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown recommender"):
        restore({"kind": "Nope"})
