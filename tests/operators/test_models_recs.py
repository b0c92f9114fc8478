"""The models step's recommendations: k distinct unseen items, scores and reasons, the
co-occurrence it learns, and the segments it passes to segment trending."""

from __future__ import annotations

import pytest

from tailor.operators.models import ModelsLogic, ModelsState
from tailor.state.recs.cooc_counts import CoOccurrence
from tailor.state.recs.cooccurrence import CoocRecommender
from tailor.state.recs.group_trending import SegmentTrending
from tailor.state.recs.hybrid import Hybrid
from tailor.state.segments.news import Joined
from tests.operators.models_support import Users, run, shopping, user_outputs
from tests.settings_support import model_params

#: Recommendations from the fused list only (selection is tested in tests/state).


def test_recs_are_k_distinct_unseen_unpurchased_items() -> None:
    updates = shopping()
    params = model_params(warmup=4, k=4, hybrid_select=False)
    outs = user_outputs(run(updates, params, batch_size=7))
    by_version = {(u.user_id, u.version): u for u in updates}
    for n, o in enumerate(outs):
        ids = [r.item_id for r in o.recs]
        assert len(ids) == len(set(ids))
        if n >= len(outs) - 8:  # once the catalogue is big enough, always k
            assert len(ids) == 4
        update = by_version[o.user_id, o.version]
        assert not set(ids) & set(update.history)
        assert not set(ids) & update.purchased
    assert "hit" not in [r.item_id for r in outs[-1].recs]  # bought by all, so never again
    # a user of family "a" gets a* items first (b* only reach it through the shared "hit")
    u1 = next(o for o in reversed(outs) if o.user_id == "u1")
    cooc = [r for r in u1.recs if r.source == "cooc"]
    assert cooc[0].item_id.startswith("a")
    assert cooc[0].score > max(r.score for r in cooc if r.item_id.startswith("b"))
    assert [r.score for r in cooc] == sorted((r.score for r in cooc), reverse=True)


def test_exclude_seen_off_allows_seen_but_never_purchased() -> None:
    updates = shopping()
    params = model_params(warmup=4, k=6, exclude_seen=False)
    outs = user_outputs(run(updates, params, batch_size=50))
    u1 = next(o for o in reversed(outs) if o.user_id == "u1")
    ids = {r.item_id for r in u1.recs}
    assert ids & set(updates[-1].history)
    assert "hit" not in ids


def test_user_without_history_gets_the_fallback_chain() -> None:
    users = Users()
    updates = [users.event("a", "x"), users.event("b", "x"), users.event("b", "y")]
    updates += [users.event("c", "z"), users.event("new", None, kind="page_view")]
    outs = user_outputs(run(updates, model_params(warmup=4, k=3), batch_size=5))
    new = next(o for o in outs if o.user_id == "new")
    # by default (no segment known yet): popularity, x 2, then y and z 1 (ties by id)
    assert [(r.item_id, r.source, r.score) for r in new.recs] == [
        ("x", "mostpop", 2.0),
        ("y", "mostpop", 1.0),
        ("z", "mostpop", 1.0),
    ]
    trending_first = model_params(warmup=4, k=3, hybrid_fallback=("trending",))
    outs = user_outputs(run(updates, trending_first, batch_size=5))
    new = next(o for o in outs if o.user_id == "new")
    assert [(r.item_id, r.source) for r in new.recs] == [
        ("x", "trending"),
        ("z", "trending"),  # z is fresher than y
        ("y", "trending"),
    ]
    # decay in event time: x at t1, t2, y at t3, z at t4 = newest (60 s apart, 1-day halflife)
    x = 2 ** (-180 / 86400) + 2 ** (-120 / 86400)
    assert [r.score for r in new.recs] == pytest.approx([x, 1.0, 2 ** (-60 / 86400)], abs=1e-6)


def test_cooc_scores_match_the_model_and_fill_from_popular_items() -> None:
    users = Users()
    updates = [users.event("a", "p"), users.event("a", "q")]
    updates += [users.event("c", "r"), users.event("c", "r2"), users.event("b", "p")]
    params = model_params(warmup=4, k=3, hybrid_select=False)
    outs = user_outputs(run(updates, params, batch_size=5))
    b = next(o for o in outs if o.user_id == "b")
    # q co-occurs with p once: the only candidate, rank 1 of co-occurrence; the fused score
    # is its reciprocal rank weight / (c + 1) (ISGD and category have no opinion yet)
    assert b.recs[0].item_id == "q" and b.recs[0].source == "cooc"
    assert b.recs[0].reason == "viewed with p"
    assert b.recs[0].score == pytest.approx(1.0 / 21.0, abs=1e-6)
    assert [r.source for r in b.recs[1:]] == ["mostpop", "mostpop"]
    assert {r.item_id for r in b.recs[1:]} == {"r", "r2"}


def test_cooc_in_the_step_equals_the_model_fed_by_hand() -> None:
    updates = shopping()
    logic = ModelsLogic(model_params())
    logic.on_batch(updates)
    by_hand = CoOccurrence()
    weights = {"purchase": 3, "add_to_cart": 2, "product_view": 1, "page_view": 1}
    for u in updates:
        if u.event.item_id is not None:
            # purchases count 3, carts 2 (recs.event_weights defaults)
            by_hand.add(u.history[:-1], u.event.item_id, weights[u.event.type or ""])
    hybrid = logic.state.recs.models["hybrid"]
    assert isinstance(hybrid, Hybrid)
    cooc = hybrid.components["cooc"]
    assert isinstance(cooc, CoocRecommender)
    for item in ["a1", "b2", "hit"]:
        assert cooc.cooc.neighbors(item) == by_hand.neighbors(item)


def test_users_join_segment_trending_at_their_learn_points() -> None:
    updates = shopping()
    params = model_params(warmup=4, k=3, reorder_s=0.0)  # a learn point is applied at once
    logic = ModelsLogic(params)
    logic.on_batch(updates)
    hybrid = logic.state.recs.models["hybrid"]
    assert isinstance(hybrid, Hybrid)
    segment = hybrid.components["segment"]
    assert isinstance(segment, SegmentTrending)
    alone = ModelsState.fresh(params).segments  # the segment model by itself, same updates
    joined: dict[str, str] = {}
    for u in updates:
        for news in alone.observe(
            u.user_id, u.version, u.event.ts, u.event.type, u.features, u.device
        ):
            if isinstance(news, Joined):
                assert (u.version - 1) % params.segments.learn_every == 0  # a learn point
                joined[news.user_id] = news.segment
    assert joined and dict(segment.segment_of) == joined
