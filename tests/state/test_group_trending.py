"""Category popularity and per-segment trending, by hand."""

from __future__ import annotations

import pickle

import pytest

from tailor.state.recs.base import Interaction
from tailor.state.recs.group_trending import CategoryPopular, SegmentTrending


def touch(model: CategoryPopular | SegmentTrending, user: str, item: str, *cats: str) -> None:
    model.learn_one(Interaction(user, item, 0.0, categories=cats), ())


def test_taste_weighs_recent_items_and_shares_an_items_weight_among_its_categories() -> None:
    model = CategoryPopular()
    touch(model, "v", "heat", "Drama", "Crime")
    touch(model, "v", "up", "Comedy")
    # newest "up" (age 0) weighs 1; "heat" (age 1) weighs 1/2, split between its two categories
    assert model.taste(("heat", "up")) == pytest.approx(
        {"Comedy": 1.0, "Drama": 0.25, "Crime": 0.25}
    )
    assert model.score("u", ("heat", "up"), ["up", "heat", "unknown"]) == pytest.approx(
        [1.0, 0.25, 0.0]
    )


def test_recommendations_come_from_the_users_categories_scaled_by_taste() -> None:
    model = CategoryPopular(max_categories=2)
    for user in ["a", "b", "c"]:
        touch(model, user, "d1", "Drama")
    touch(model, "a", "d2", "Drama")
    touch(model, "a", "c1", "Comedy")
    touch(model, "a", "h1", "Horror")  # not among the user's categories
    recs = model.recommend("u", ("c1", "d2"), 0.0, 5, {"c1", "d2"})
    # taste: Drama 1 (d2, newest), Comedy 1/2; Drama's best d1 (3 of 3 → 1.0)
    # Comedy has only c1, excluded: nothing more
    assert recs == [("d1", pytest.approx(1.0))]
    assert model.why("u", ("c1", "d2"), ["d1", "unknown"]) == ["popular in Drama", ""]
    assert model.recommend("u", (), 0.0, 5, set()) == []  # no history, no taste


def test_an_items_categories_are_those_it_first_came_with() -> None:
    model = CategoryPopular()
    touch(model, "a", "x", "Drama")
    touch(model, "b", "x", "Comedy")  # later events cannot move it
    touch(model, "c", "x")  # nor events without categories
    assert model.categories["x"] == ("Drama",)
    assert model.popular["Drama"].score("x") == pytest.approx(3.0)
    assert "Comedy" not in model.popular


def test_segment_trending_counts_events_in_the_users_current_segment() -> None:
    model = SegmentTrending(max_users=2)
    touch(model, "a", "x")  # no segment yet: not counted anywhere
    model.assign("a", "s1")
    model.assign("b", "s2")
    touch(model, "a", "y")
    touch(model, "b", "z")
    assert model.recommend("a2", (), 0.0, 3, set()) == []  # unassigned user: silent
    model.assign("c", "s1")  # a third user: the least recently assigned (a) is dropped
    assert "a" not in model.segment_of
    assert [item for item, _ in model.recommend("c", (), 0.0, 3, set())] == ["y"]
    assert model.why("c", (), ["y"]) == ["trending in your segment"]
    assert model.score("c", (), ["y", "z"]) == pytest.approx([1.0, 0.0])
    model.forget("c", ())
    assert model.recommend("c", (), 0.0, 3, set()) == []
    clone = pickle.loads(pickle.dumps(model))
    assert clone.recommend("b", (), 0.0, 3, set()) == [("z", 1.0)]
