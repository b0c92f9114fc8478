"""Hybrid: reciprocal rank fusion computed by hand, the cold-start fallback, the reasons."""

from __future__ import annotations

from collections.abc import Collection, Sequence

import pytest

from state.hybrid import Hybrid
from state.recommender import Scored


class Fixed:
    """A component that always proposes the same list and records what it learned."""

    def __init__(self, items: Sequence[str]) -> None:
        self.items = list(items)
        self.learned: list[tuple[str, str]] = []

    def learn_one(self, user: str, item: str, ts: float, history: Sequence[str]) -> None:
        self.learned.append((user, item))

    def recommend(
        self, user: str, history: Sequence[str], ts: float, k: int, exclude: Collection[str]
    ) -> list[Scored]:
        kept = [item for item in self.items if item not in exclude][:k]
        return [(item, 1.0) for item in kept]


def test_fusion_by_hand() -> None:
    a, b = Fixed(["x", "y", "z"]), Fixed(["y", "w"])
    hybrid = Hybrid({"a": a, "b": b}, {"a": 1.0, "b": 0.5}, depth=3, c=1.0)
    got = hybrid.recommend_explained("u", ("h",), 0.0, 4, set())
    # x: 1/(1+1) = 0.5; y: 1/(1+2) + 0.5/(1+1) = 0.58333; z: 1/(1+3) = 0.25; w: 0.5/(1+2)
    assert [(r.item, round(r.score, 5), r.source) for r in got] == [
        ("y", 0.58333, "a"),
        ("x", 0.5, "a"),
        ("z", 0.25, "a"),
        ("w", 0.16667, "b"),
    ]


def test_exclusions_depth_and_zero_weights() -> None:
    a, b = Fixed(["x", "y", "z"]), Fixed(["q"])
    hybrid = Hybrid({"a": a, "b": b}, {"a": 1.0, "b": 0.0}, depth=2, c=10.0)
    got = [item for item, _ in hybrid.recommend("u", ("h",), 0.0, 5, {"x"})]
    assert got == ["y", "z"]  # x excluded; depth 2 of a's list; b only learns


def test_ties_break_by_item_id() -> None:
    hybrid = Hybrid({"a": Fixed(["b"]), "c": Fixed(["a"])}, {"a": 1.0, "c": 1.0}, c=0.0)
    assert [item for item, _ in hybrid.recommend("u", ("h",), 0.0, 2, set())] == ["a", "b"]


def test_a_user_without_history_gets_the_first_fallback_that_answers() -> None:
    empty, trending, popular = Fixed([]), Fixed(["t1", "t2"]), Fixed(["p1"])
    hybrid = Hybrid(
        {"seg": empty, "trending": trending, "pop": popular, "cooc": Fixed(["c1"])},
        {"cooc": 1.0},
        fallback=("seg", "trending", "pop"),
    )
    cold = hybrid.recommend_explained("new", (), 0.0, 2, set())
    assert [(r.item, r.source) for r in cold] == [("t1", "trending"), ("t2", "trending")]
    warm = hybrid.recommend_explained("old", ("h",), 0.0, 2, set())
    assert [(r.item, r.source) for r in warm] == [("c1", "cooc")]


def test_every_component_learns_every_interaction() -> None:
    a, b = Fixed([]), Fixed([])
    hybrid = Hybrid({"a": a, "b": b}, {"a": 1.0})
    hybrid.learn_one("u", "i", 0.0, ())
    assert a.learned == b.learned == [("u", "i")]


def test_unknown_names_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown components"):
        Hybrid({"a": Fixed([])}, {"b": 1.0})
    with pytest.raises(ValueError, match="unknown components"):
        Hybrid({"a": Fixed([])}, {"a": 1.0}, fallback=("z",))


class Scoring:
    """A component with given scores."""

    def __init__(self, scored: Sequence[Scored]) -> None:
        self.scored = list(scored)

    def learn_one(self, user: str, item: str, ts: float, history: Sequence[str]) -> None:
        pass

    def recommend(
        self, user: str, history: Sequence[str], ts: float, k: int, exclude: Collection[str]
    ) -> list[Scored]:
        return self.scored[:k]


def test_combsum_scales_each_list_to_its_own_range() -> None:
    a = Scoring([("x", 10.0), ("y", 6.0), ("z", 2.0)])  # → 1, 0.5, 0
    b = Scoring([("z", 0.9), ("y", 0.3)])  # → 1, 0
    hybrid = Hybrid({"a": a, "b": b}, {"a": 1.0, "b": 0.8}, fusion="combsum")
    got = hybrid.recommend_explained("u", ("h",), 0.0, 3, set())
    # x 1.0; z 0 + 0.8 = 0.8; y 0.5 + 0 = 0.5
    assert [(r.item, round(r.score, 6), r.source) for r in got] == [
        ("x", 1.0, "a"),
        ("z", 0.8, "b"),
        ("y", 0.5, "a"),
    ]
    alone = Hybrid({"a": a}, {"a": 1.0}, fusion="combsum")
    assert alone.recommend_explained("u", ("h",), 0.0, 3, set())[-1].source == "a"  # z: gain 0
    with pytest.raises(ValueError, match="fusion"):
        Hybrid({"a": a}, {"a": 1.0}, fusion="avg")
