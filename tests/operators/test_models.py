from __future__ import annotations

import pickle
from dataclasses import replace

import bytewax.operators as op
import pytest
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSource

from tailor.operators.models import ModelsLogic
from tailor.operators.records import (
    FallbackList,
    ForUser,
    SegmentInfo,
    SegmentModel,
    UserOutput,
    UserUpdate,
)
from tailor.operators.redis.sink import RESERVED_FIELDS
from tailor.operators.replicas import models
from tailor.state.segments.clusterers import CLUSTERER_DEFAULTS
from tailor.state.segments.rfm_tiers import TIERS
from tailor.state.segments.rules import RuleError
from tailor.state.segments.segmenter import DEFAULT_FEATURES
from tests.operators.models_support import Out, Users, run, shopping, user_outputs
from tests.settings_support import model_params


def test_one_output_per_changed_user_per_batch() -> None:
    updates = shopping()
    params = model_params(warmup=4, k=5, reorder_s=0.0)  # every batch settles at once
    outs = user_outputs(run(updates, params, batch_size=10))
    expected = []
    for start in range(0, len(updates), 10):
        batch = updates[start : start + 10]
        seen: dict[str, list[UserUpdate]] = {}
        for u in batch:
            seen.setdefault(u.user_id, []).append(u)
        expected += [
            (uid, us[-1].version, tuple(u.read_at for u in us)) for uid, us in seen.items()
        ]
    # each user's outputs come from their own keyed step: in order per user, not across users
    assert sorted((o.user_id, o.version, o.read_ats) for o in outs) == sorted(expected)
    last = max(outs, key=lambda o: o.read_ats)
    assert last.user_id == "u1" and last.event_times == (updates[-1].event.ts,)
    assert last.updated_at == updates[-1].event.ts


def test_profile_fields_and_segments() -> None:
    outs = run(shopping(), model_params(warmup=4, k=3), batch_size=10)
    infos = [o for o in outs if isinstance(o, SegmentInfo)]
    user_outs = user_outputs(outs)
    assert infos, "the first time a cluster is named, its SegmentInfo is emitted"
    assert [o.segment for o in user_outs[:3]] == ["", "", ""]  # warm-up: no cluster yet
    for o in user_outs[4:]:
        # the newest info at the output's place in event time names its segment alike (an
        # output settled at its place keeps the name of then, though a rename came out with it)
        before = outs[: outs.index(o)]
        at = o.updated_at
        info = [
            i
            for i in before
            if isinstance(i, SegmentInfo) and i.segment == o.segment and i.changed_at <= at
        ][-1]
        assert info.name == o.segment_name
    assert set(infos[0].centroid) >= set(DEFAULT_FEATURES)
    assert [i.version for i in infos] == list(range(1, len(infos) + 1))
    last_name: dict[str, str] = {}
    for info in infos:  # an info only when the name changes
        assert last_name.get(info.segment) != info.name
        last_name[info.segment] = info.name
    o = [out for out in user_outs if out.user_id == "u1"][-1]  # the stream's last event
    assert o.segment.startswith("cluster:")
    assert o.profile["variant"] == "all"  # the default split: everyone in one variant
    assert set(o.profile) == {
        "variant",
        "features",
        "device",
        "referrer",
        "top_categories",
        "last_event_type",
        "last_event_ts",
    }
    assert not set(o.profile) & set(RESERVED_FIELDS)
    assert o.profile["top_categories"] == [["books", 2.0], ["games", 1.0]]
    assert o.profile["last_event_type"] == "page_view"
    assert o.profile["referrer"] == "search"


def test_no_segment_during_warmup_then_a_model_record_at_fixed_counts() -> None:
    updates = shopping(20)  # 20 users: 21 learn points (u1 learns twice)
    outs = run(updates, model_params(warmup=8, publish_every=5, k=3), batch_size=6)
    learned_before: dict[str, int] = {}
    learned = 0
    for u in updates:  # replay the learn points to know where the warm-up ends
        if (u.version - 1) % 10 == 0:
            learned += 1
        learned_before[f"{u.user_id}:{u.version}"] = learned
    for o in user_outputs(outs):
        warm = learned_before[f"{o.user_id}:{o.version}"] >= 8
        assert (o.segment != "") == warm and (o.segment_name != "") == warm
    models_out = [o for o in outs if isinstance(o, SegmentModel)]
    assert [m.version for m in models_out] == [5, 8, 10, 15, 20]
    record = models_out[-1].record
    assert record["ready"] and record["version"] == 20 and record["clusterer"] == "KMeans"
    assert record["params"] == {**CLUSTERER_DEFAULTS["KMeans"], "warmup": 8}
    assert record["features"] == list(DEFAULT_FEATURES)
    assert set(record["segments"]) == {o.segment for o in outs if isinstance(o, SegmentInfo)}
    for seg in record["segments"].values():
        assert seg["name"] and set(seg["zscores"]) == set(DEFAULT_FEATURES)
    assert not models_out[0].record["ready"] and models_out[0].record["segments"] == {}


def buyers(n_users: int = 40) -> list[UserUpdate]:
    """Users buying 1..4 times with different spend, the way user state reports RFM values."""
    users, updates = Users(), []
    for n in range(n_users):
        user = f"b{n}"
        for i in range(1 + n % 4):
            u = users.event(user, f"p{n}-{i}", kind="purchase")
            assert u.features is not None
            u.features.update(
                purchases_total=float(i + 1), spend_total=10.0 * (i + 1) * (1 + n % 7)
            )
            u.features.update(recency_days=0.0)
            updates.append(u)
    return updates


def test_rfm_tiers_from_every_purchase_and_rules_can_use_them() -> None:
    rules = {"vip": "rfm == 'champions'", "regular": "rfm in ('loyal', 'champions')"}
    outs = run(buyers(), model_params(warmup=4, k=3, rules=rules, publish_every=10), batch_size=9)
    last = {o.user_id: o for o in user_outputs(outs)}
    tiers = {o.rfm_segment for o in last.values()}
    assert tiers <= set(TIERS) | {""} and len(tiers - {""}) >= 3
    assert last["b39"].rfm_segment  # bought 4 times, the most: a top tier
    for o in last.values():
        assert ("vip" in o.rule_segments) == (o.rfm_segment == "champions")
        assert ("regular" in o.rule_segments) == (o.rfm_segment in ("loyal", "champions"))
    record = [o for o in outs if isinstance(o, SegmentModel)][-1].record
    assert record["rfm"]["customers"] == 40
    assert set(record["rfm"]["cut_points"]) == {"recency_days", "frequency", "monetary"}
    assert list(record["rfm"]["cut_points"]["frequency"]) == [1.0, 2.0, 3.0, 4.0]  # 10 users each
    quality = record["quality"]
    assert set(quality) >= {"silhouette", "drift", "drift_events", "silhouette_sample"}


def test_a_bounded_input_learns_what_the_reorder_buffer_holds_at_its_end() -> None:
    params = model_params(warmup=8, publish_every=5, k=3, reorder_s=1e9)  # nothing passes
    outs = run(shopping(20), params, batch_size=6)
    sent = [o for o in user_outputs(outs) if not o.settled]
    assert all(o.segment == "" for o in sent)  # no learn point applied yet
    models_out = [o for o in outs if isinstance(o, SegmentModel)]
    assert [m.version for m in models_out] == [5, 8, 10, 15, 20]  # all at the end of input
    assert outs.index(models_out[0]) > max(outs.index(o) for o in sent)
    # at the end, users' last outputs settle where they stand in event time, each sent again
    # (the same version): those after the warm-up get the segment they were not given
    settled = [o for o in user_outputs(outs) if o.settled]
    last_sent = {o.user_id: o for o in sent}
    assert sorted(o.user_id for o in settled) == sorted(last_sent)
    assert all(o.version == last_sent[o.user_id].version for o in settled)
    corrected = [o for o in settled if o.segment != last_sent[o.user_id].segment]
    assert corrected and all(o.segment.startswith("cluster:") for o in corrected)
    assert all(o.read_ats == () for o in settled)  # latency was measured on the first send


def test_rule_segments() -> None:
    rules = {
        "buyer": "spend_30d > 0",
        "searcher": "referrer == 'search' and device in ('mobile')",
        "clustered": "segment != 'none' and top_category == 'books'",
        "viewer": "last_event_type == 'page_view'",
    }
    outs = user_outputs(run(shopping(), model_params(warmup=4, k=3, rules=rules), batch_size=100))
    by_user = {o.user_id: o for o in outs}
    assert by_user["u1"].rule_segments == ("buyer", "clustered", "searcher", "viewer")
    assert by_user["u2"].rule_segments == ("buyer", "clustered")


def test_bad_config_fails_when_the_flow_is_built() -> None:
    flow = Dataflow("bad")
    empty: list[UserUpdate] = []
    keyed = op.key_on("key", op.input("in", flow, TestingSource(empty)), lambda _u: "models")
    with pytest.raises(RuleError, match="rule 'vip'"):
        models("m1", keyed, model_params(rules={"vip": "spend > 1"}))
    with pytest.raises(ValueError, match="unknown clusterer"):
        models("m2", keyed, model_params(clusterer="Nope"))
    with pytest.raises(ValueError, match="k must be >= 1"):
        model_params(warmup=4, k=0)


def final_state(
    outs: list[Out],
) -> tuple[
    dict[str, UserOutput],
    dict[str, SegmentInfo],
    SegmentModel | None,
    dict[tuple[str, str], FallbackList],
]:
    """What a sink is left with: the newest output per user and per segment, the last model,
    the newest version of each published list."""
    users: dict[str, UserOutput] = {}
    infos: dict[str, SegmentInfo] = {}
    model = None
    lists: dict[tuple[str, str], FallbackList] = {}
    for o in outs:
        if isinstance(o, UserOutput):
            users[o.user_id] = replace(o, read_ats=(), event_times=())
        elif isinstance(o, SegmentInfo):
            infos[o.segment] = o
        elif isinstance(o, SegmentModel):
            model = o
        elif isinstance(o, FallbackList):
            known = lists.get((o.kind, o.group))
            if known is None or o.version > known.version:
                lists[(o.kind, o.group)] = o
    return users, infos, model, lists


def test_batch_boundaries_do_not_change_the_final_state() -> None:
    updates = shopping(20)
    params = model_params(warmup=4, k=5, rules={"buyer": "spend_30d > 0"})
    one_by_one = final_state(run(updates, params, batch_size=1))
    assert final_state(run(updates, params, batch_size=7)) == one_by_one
    assert final_state(run(updates, params, batch_size=1000)) == one_by_one
    assert len(one_by_one[0]) == 20 and one_by_one[1] and one_by_one[2]
    assert {kind for kind, _group in one_by_one[3]} == {"popular", "trending", "segment"}


def test_segment_trending_first_in_the_chain_does_not_depend_on_batching() -> None:
    """Users join segments at clusterer learn points, fixed by the data: batching once
    changed which segment an event counted in, and so what segment trending served."""
    updates = shopping(20)
    chain = ("segment", "mostpop", "trending")
    params = model_params(warmup=4, k=5, hybrid_fallback=chain)
    one_by_one = final_state(run(updates, params, batch_size=1))
    assert any(r.source == "segment" for o in one_by_one[0].values() for r in o.recs)
    assert final_state(run(updates, params, batch_size=7)) == one_by_one
    assert final_state(run(updates, params, batch_size=1000)) == one_by_one


def test_same_input_gives_identical_outputs() -> None:
    updates = shopping(20)
    params = model_params(warmup=4, k=5, fallback_every_s=0.0)  # lists after every batch
    first = run(updates, params, batch_size=9)
    second = run(updates, params, batch_size=9)
    assert first == second
    assert pickle.dumps(first) == pickle.dumps(second)


def test_snapshot_is_a_deep_copy_and_resumes_identically() -> None:
    updates = shopping()
    params = model_params(warmup=4, k=4, fallback_every_s=0.0)  # lists after every batch
    whole = ModelsLogic(params)
    resumed_from = ModelsLogic(params)
    outs_whole: list[Out] = []
    for start in range(0, len(updates), 8):
        emitted, discard = whole.on_batch(updates[start : start + 8])
        assert discard is False
        outs_whole += list(emitted)
    cut = 32
    outs_split: list[Out] = []
    for start in range(0, cut, 8):
        outs_split += list(resumed_from.on_batch(updates[start : start + 8])[0])
    snap = pickle.loads(pickle.dumps(resumed_from.snapshot()))
    before = resumed_from.snapshot()
    resumed_from.on_batch(updates[cut:])  # mutating the logic must not touch the snapshot
    assert pickle.dumps(before) != pickle.dumps(resumed_from.snapshot())
    resumed = ModelsLogic(params, snap)
    for start in range(cut, len(updates), 8):
        outs_split += list(resumed.on_batch(updates[start : start + 8])[0])
    assert outs_split == outs_whole


def lightened(updates: list[UserUpdate], learn_every: int) -> list[UserUpdate]:
    """As the user-state step sends them: light except at learn points, purchases, each user's
    last update, and a few in between (the last of some upstream batch)."""
    last = {u.user_id: u for u in updates}
    out = []
    for n, u in enumerate(updates):
        learn_point = (u.version - 1) % learn_every == 0
        keep = learn_point or u.event.type == "purchase" or last[u.user_id] is u or n % 5 == 0
        out.append(u if keep else UserUpdate(u.user_id, u.version, u.event, u.read_at, u.history))
    return out


def test_light_updates_leave_the_same_final_state_and_every_event_is_timed() -> None:
    updates = shopping(20)
    params = model_params(warmup=4, k=5, rules={"buyer": "spend_30d > 0"}, learn_every=3)
    light = lightened(updates, params.segments.learn_every)
    assert sum(not u.full for u in light) > len(light) // 3
    expected = final_state(run(updates, params, batch_size=1))
    for batch_size in (1, 7, 1000):
        outs = run(light, params, batch_size)
        assert final_state(outs) == expected
        read_ats = sorted(t for o in user_outputs(outs) for t in o.read_ats)
        assert read_ats == sorted(u.read_at for u in updates)  # each once, none lost


def test_a_light_update_at_a_learn_point_is_a_wiring_error() -> None:
    updates = shopping()
    light = lightened(updates, learn_every=10)
    with pytest.raises(ValueError, match="learn_every"):
        ModelsLogic(model_params(learn_every=3)).on_batch(light)


def test_an_output_settled_at_once_is_marked_settled() -> None:
    """Unstamped input is ordered as it comes, so every output settles in its own batch. It
    must say so: after a crash it may meet a provisional output of its version that the killed
    run wrote, and only a settled output may replace that (`tailor.operators.redis.scripts`)."""
    params = model_params(warmup=4, k=3, reorder_s=0.0)  # no reorder allowance to wait for
    outs = user_outputs(run(shopping(), params, batch_size=10))
    assert outs and all(o.settled for o in outs)
    assert all(o.read_ats for o in outs)  # first sends: their latency is measured


def test_a_resume_keeps_the_outputs_waiting_to_be_settled() -> None:
    """With a reorder allowance outputs wait for their place in event-time order: the
    snapshot carries them and the points held, and the resumed step settles them as an
    uninterrupted one does."""
    updates = shopping()
    params = model_params(warmup=4, k=4, reorder_s=1e9, fallback_every_s=0.0)

    def feed(logic: ModelsLogic, start: int, stop: int) -> list[Out]:
        outs: list[Out] = []
        for at in range(start, stop, 8):
            outs += list(logic.on_batch(updates[at : min(at + 8, stop)])[0])
        return outs

    whole = ModelsLogic(params)
    outs_whole = feed(whole, 0, len(updates)) + list(whole.on_eof()[0])
    first = ModelsLogic(params)
    outs = feed(first, 0, 32)
    drafts = [o.draft for o in outs if isinstance(o, ForUser) and o.draft is not None]
    assert any(not d.settled for d in drafts) and first.state.segments.order.held
    resumed = ModelsLogic(params, first.snapshot())
    outs += feed(resumed, 32, len(updates)) + list(resumed.on_eof()[0])
    assert outs == outs_whole
    assert any(isinstance(o, ForUser) and o.settlements for o in outs[-5:])


def test_refits_are_published_and_counted() -> None:
    """Each re-fit publishes the segment model as a new version with its count of re-fits,
    and `tailor_segment_refits_total` counts them."""
    from prometheus_client import REGISTRY

    before = REGISTRY.get_sample_value("tailor_segment_refits_total") or 0.0
    updates = shopping(30)
    span = updates[-1].event.ts - updates[0].event.ts
    params = model_params(warmup=4, k=3, refit_every_s=span / 8, sample_size=8)
    outs = run(updates, params, batch_size=10)
    models = [o for o in outs if isinstance(o, SegmentModel)]
    refits = [m.record["refits"] for m in models]
    assert refits[-1] >= 3 and refits == sorted(refits)
    after = REGISTRY.get_sample_value("tailor_segment_refits_total") or 0.0
    assert after - before == refits[-1]
