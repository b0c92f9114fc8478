"""LiveRecs: the variants' recommenders and business rules (the live test of the lists is in
`tests/operators/test_user_outputs.py`)."""

from __future__ import annotations

import pickle
from dataclasses import replace

import pytest

from tailor.state.recs.base import Interaction
from tailor.state.recs.cooccurrence import CoocRecommender
from tailor.state.recs.hybrid import Hybrid
from tailor.state.recs.live_recs import LiveRecs
from tailor.state.recs.variants import Variants
from tests.settings_support import rec_settings

#: Without selection, so a test knows which list is served (selection has its own test).
FUSED_ONLY = rec_settings(hybrid_select=False)


def learn(
    recs: LiveRecs,
    user: str,
    item: str,
    ts: float,
    previous: tuple[str, ...],
    category: str | None = None,
) -> None:
    categories = (category,) if category else ()
    recs.learn(Interaction(user, item, ts, categories=categories), previous)


def test_popularity_first_then_co_occurrence() -> None:
    recs = LiveRecs.build(settings=FUSED_ONLY, k=2)
    for user, item in [("a", "x"), ("a", "y"), ("b", "x"), ("b", "z"), ("c", "x")]:
        learn(recs, user, item, 0.0, ())
    # by hand: x 3, y 1, z 1 (ties by id: y before z); cooc from x: y 1/3, z 1/3 (P(j | x))
    _, first = recs.recommend("d", (), frozenset(), 0.0)  # no history: popularity only
    assert [r.item_id for r in first] == ["x", "y"]
    learn(recs, "d", "y", 1.0, ())
    _, second = recs.recommend("d", ("y",), frozenset(), 0.0)
    assert [(r.item_id, r.source) for r in second] == [("x", "mostpop"), ("z", "mostpop")]


def test_each_variant_gets_its_recommender() -> None:
    shares = {"control": 0.5, "treatment": 0.5}
    models = {"control": "trending", "treatment": "hybrid"}
    recs = LiveRecs.build(settings=FUSED_ONLY, k=3, shares=shares, models=models)
    split = Variants(shares)
    control = next(f"u{n}" for n in range(100) if split.assign(f"u{n}") == "control")
    treated = next(f"u{n}" for n in range(100) if split.assign(f"u{n}") == "treatment")
    learn(recs, "v1", "a", 0.0, ())
    learn(recs, "v1", "b", 0.0, ("a",))
    for user in ["v2", "v3"]:
        learn(recs, user, "c", 0.0, ())
    variant, served = recs.recommend(control, ("a",), frozenset(), 0.0)
    assert variant == "control" and [(r.item_id, r.source) for r in served] == [
        ("c", "trending"),
        ("b", "trending"),
    ]
    variant, served = recs.recommend(treated, ("a",), frozenset(), 0.0)
    assert variant == "treatment" and [(r.item_id, r.source, r.reason) for r in served] == [
        ("b", "cooc", "viewed with a"),
        ("c", "mostpop", "popular"),
    ]


def test_purchased_and_seen_items_are_excluded() -> None:
    recs = LiveRecs.build(settings=FUSED_ONLY, k=5)
    for item in ["a", "b", "c"]:
        learn(recs, "v", item, 0.0, ())
    _, served = recs.recommend("u", ("a",), frozenset({"b"}), 0.0)
    assert [r.item_id for r in served] == ["c"]


def test_forget_drops_the_users_co_occurrences() -> None:
    recs = LiveRecs.build(settings=FUSED_ONLY, k=2)
    learn(recs, "u", "a", 0.0, ())
    learn(recs, "u", "b", 1.0, ("a",))
    recs.recommend("u", ("a", "b"), frozenset(), 0.0)
    recs.forget("u", ("a", "b"))
    hybrid = recs.models["hybrid"]
    assert isinstance(hybrid, Hybrid)
    cooc = hybrid.components["cooc"]
    assert isinstance(cooc, CoocRecommender)
    assert cooc.cooc.cooc("a", "b") == 0


def test_bad_variant_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="need a model each"):
        LiveRecs.build(FUSED_ONLY, shares={"a": 0.5, "b": 0.5}, models={"a": "hybrid"})
    with pytest.raises(ValueError, match="unknown recommenders"):
        LiveRecs.build(FUSED_ONLY, shares={"a": 1.0}, models={"a": "magic"})
    with pytest.raises(ValueError, match="sum"):
        LiveRecs.build(FUSED_ONLY, shares={"a": 0.4}, models={"a": "hybrid"})


def test_pickles_and_serves_the_same_after() -> None:
    recs = LiveRecs.build(settings=FUSED_ONLY, k=2)
    learn(recs, "v", "x", 0.0, ())
    learn(recs, "v", "y", 1.0, ("x",))
    copy = pickle.loads(pickle.dumps(recs))
    assert copy.recommend("u", ("x",), frozenset(), 2.0) == recs.recommend(
        "u", ("x",), frozenset(), 2.0
    )


def test_the_diversity_cap_limits_each_category() -> None:
    recs = LiveRecs.build(settings=FUSED_ONLY, k=4, max_per_category=1)
    catalogue = [("d1", "drama"), ("d2", "drama"), ("c1", "comedy"), ("d3", "drama"), ("x", None)]
    for rank, (item, category) in enumerate(catalogue):
        for n in range(10 - rank):  # d1 most popular, then d2, c1, d3, x
            learn(recs, f"v{n}", item, 0.0, (), category)
    _, served = recs.recommend("u", (), frozenset(), 0.0)
    # one drama, one comedy, then the uncategorised x; d2 and d3 are capped out
    assert [r.item_id for r in served] == ["d1", "c1", "x"]
    uncapped = LiveRecs.build(settings=FUSED_ONLY, k=4)
    for rank, (item, category) in enumerate(catalogue):
        for n in range(10 - rank):
            learn(uncapped, f"v{n}", item, 0.0, (), category)
    assert [r.item_id for r in uncapped.recommend("u", (), frozenset(), 0.0)[1]] == [
        "d1",
        "d2",
        "c1",
        "d3",
    ]


def test_blocked_items_are_never_recommended_until_unblocked() -> None:
    recs = LiveRecs.build(settings=FUSED_ONLY, k=2)
    for user, item in [("v1", "a"), ("v2", "a"), ("v1", "b"), ("v3", "c")]:
        learn(recs, user, item, 0.0, ())
    recs.block("a")
    learn(recs, "v4", "a", 1.0, ())  # still learned from
    assert [r.item_id for r in recs.recommend("u", (), frozenset(), 0.0)[1]] == ["b", "c"]
    recs.block("a", blocked=False)
    assert [r.item_id for r in recs.recommend("u", (), frozenset(), 0.0)[1]] == ["a", "b"]


def test_cold_users_get_their_segments_trending_first_with_its_reason() -> None:
    segment_first = replace(FUSED_ONLY, hybrid_fallback=("segment", "mostpop", "trending"))
    recs = LiveRecs.build(settings=segment_first, k=2)
    recs.assign_segment("v1", "7")
    recs.assign_segment("new", "7")
    learn(recs, "v1", "niche", 0.0, ())  # counted in segment 7
    for user in ["w1", "w2"]:
        learn(recs, user, "mass", 0.0, ())  # unassigned users: popular overall only
    _, served = recs.recommend("new", (), frozenset(), 1.0)
    assert [(r.item_id, r.source, r.reason) for r in served] == [
        ("niche", "segment", "trending in your segment"),
        ("mass", "mostpop", "popular"),
    ]


def test_category_taste_re_ranks_co_occurrence_and_says_so() -> None:
    recs = LiveRecs.build(
        settings=rec_settings(hybrid_select=False, hybrid_weights={"cooc": 1.0, "category": 2.0}),
        k=2,
    )
    for user in ["v1", "v2"]:  # a pairs with both x (comedy) and y (drama), x more often
        learn(recs, user, "a", 0.0, (), "drama")
        learn(recs, user, "x", 0.0, ("a",), "comedy")
    learn(recs, "v3", "a", 0.0, (), "drama")
    learn(recs, "v3", "y", 0.0, ("a",), "drama")
    _, served = recs.recommend("u", ("a",), frozenset(), 1.0)
    # co-occurrence ranks x 1, y 2; taste (drama, from "a") ranks y 1, x 2 (no match), c = 20:
    # y 1/22 + 2/21 > x 1/21 + 2/22; x's reason stays co-occurrence's (category has none for it)
    assert [(r.item_id, r.source, r.reason) for r in served] == [
        ("y", "category", "popular in drama"),
        ("x", "cooc", "viewed with a"),
    ]
