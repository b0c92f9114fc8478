"""The per-user outputs step: the provisional output, the last list and its test, expiry."""

from __future__ import annotations

import pickle
from collections.abc import Iterable

from bytewax.operators import StatefulBatchLogic

from tailor.operators.live_quality import QualityLogic, QualityParams, merged
from tailor.operators.models import ModelsLogic
from tailor.operators.records import (
    AgedDraft,
    Drafted,
    Erasure,
    ForUser,
    Moves,
    Recommendation,
    Scores,
    UserOutput,
    UserUpdate,
)
from tailor.operators.user_outputs import UserOutputsLogic, UserOutputsParams, UserOutputsState
from tailor.state import snapshots
from tailor.state.segments.rules import RuleSet
from tests.operators.models_support import Users, shopping
from tests.settings_support import model_params


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def full_update(user: str = "u1") -> UserUpdate:
    return Users().event(user, "a")


def drafted(
    items: tuple[str, ...], settled: bool = False, version: int = 1, segment: str = "cluster:1"
) -> Drafted:
    update = full_update()
    update = UserUpdate(
        update.user_id,
        version,
        update.event,
        update.read_at,
        update.history,
        update.features,
        update.device,
    )
    recs = tuple(Recommendation(item, 1.0, "mostpop") for item in items)
    return Drafted(update, "all", recs, segment, "Fans", None, settled)


def logic(clock: Clock | None = None, ttl_s: float = 0.0) -> UserOutputsLogic:
    params = UserOutputsParams({}, (), k=3, ttl_s=ttl_s)
    return UserOutputsLogic(params, RuleSet({}, ()), None, clock or Clock())


def scores(out: list[object]) -> list[tuple[int, str, int]]:
    return [s for item in out if isinstance(item, Scores) for s in item.scored]


def test_each_test_meets_the_list_sent_before_it() -> None:
    """Tests at or before the draft's place meet the old list, later ones the draft's."""
    step = logic()
    first = ForUser("u1", ((1.0, 10.0),), (), drafted(("x", "y")), 0)
    out, _ = step.on_batch([first])
    assert [type(o) for o in out] == [UserOutput]  # nothing to test against yet
    news = ForUser(
        "u1",
        ((2.0, 11.0), (3.0, 12.0), (4.0, 13.0)),
        ((0, "y", 7), (1, "x", 8), (2, "z", 9)),
        drafted(("z", "x"), version=2),
        1,
    )
    emitted, keep = step.on_batch([news])
    out = list(emitted)
    assert keep is StatefulBatchLogic.RETAIN
    # y: rank 2 of [x, y]; x: rank 1 of [x, y] (tested before the draft at 1); z: rank 1 of [z, x]
    assert scores(out) == [(7, "all", 2), (8, "all", 1), (9, "all", 1)]
    output = next(o for o in out if isinstance(o, UserOutput))
    assert output.read_ats == (2.0, 3.0) and output.event_times == (11.0, 12.0)
    assert step._waiting == [(4.0, 13.0)]  # reflected by the next output


def test_a_settlement_finds_the_provisional_output_and_corrects_it() -> None:
    step = logic()
    out, _ = step.on_batch([ForUser("u1", ((1.0, 10.0),), (), drafted(("x",)), 0)])
    sent = next(o for o in out if isinstance(o, UserOutput))
    assert not sent.settled and step.state.provisional == sent
    stale = ForUser("u1", settlements=((0, "cluster:9", "Old", None),))
    assert list(step.on_batch([stale])[0]) == []  # another version: nothing
    settle = ForUser("u1", settlements=((1, "cluster:2", "Night owls", "champions"),))
    (fixed,) = step.on_batch([settle])[0]
    assert isinstance(fixed, UserOutput) and fixed.settled and fixed.version == 1
    assert (fixed.segment, fixed.segment_name, fixed.rfm_segment) == (
        "cluster:2",
        "Night owls",
        "champions",
    )
    assert fixed.read_ats == () and step.state.provisional is None


def test_an_erasure_forgets_the_user_and_goes_on_to_the_sink() -> None:
    step = logic()
    step.on_batch([ForUser("u1", ((1.0, 10.0),), (), drafted(("x",)), 0)])
    assert step.state.shown is not None and step.state.provisional is not None
    erasure = Erasure("u1", "forget", ("a",))
    out, keep = step.on_batch([erasure, ForUser("u1", settlements=((1, "c", "n", None),))])
    assert list(out) == [erasure]  # the provisional output is gone: nothing to settle
    assert step.state == UserOutputsState() and keep is StatefulBatchLogic.DISCARD
    back = logic()  # the next news build a new logic: the user is new, untested
    out, _ = back.on_batch([ForUser("u1", ((2.0, 11.0),), ((0, "x", 5),))])
    assert scores(list(out)) == []


def test_a_user_is_forgotten_ttl_after_their_last_news() -> None:
    clock = Clock()
    step = logic(clock, ttl_s=60.0)
    step.on_batch([ForUser("u1", ((1.0, 10.0),), (), drafted(("x",), settled=True), 0)])
    assert step.state.shown == ("all", ("x",))
    due = step.notify_at()
    assert due is not None and due.timestamp() == 1060.0
    clock.now = 1030.0
    step.on_batch([ForUser("u1", ((2.0, 11.0),))])  # activity moves the expiry
    clock.now = 1061.0
    assert step.on_notify() == ([], StatefulBatchLogic.RETAIN)  # woken early: not yet
    assert step.notify_at().timestamp() == 1090.0  # type: ignore[union-attr]
    clock.now = 1090.0
    assert step.on_notify() == ([], StatefulBatchLogic.DISCARD)
    assert logic(clock, ttl_s=0.0).notify_at() is None  # 0: kept for ever


def test_the_snapshot_is_the_state_and_resumes() -> None:
    step = logic()
    step.on_batch([ForUser("u1", ((1.0, 10.0),), (), drafted(("x", "y")), 0)])
    snap = step.snapshot()
    resumed = UserOutputsLogic(UserOutputsParams({}, (), k=3, ttl_s=0.0), RuleSet({}, ()), snap)
    assert resumed.state == step.state
    out, _ = resumed.on_batch([ForUser("u1", ((2.0, 11.0),), ((0, "y", 3),))])
    assert scores(list(out)) == [(3, "all", 2)]


def test_the_models_send_tests_in_learning_order_and_draft_after_learning() -> None:
    """The models learn an update, then draft at it: a test of that update's item comes
    before the draft (its own list cannot contain what it was drafted after learning)."""
    users = Users()
    full_a = users.event("u1", "a")
    full_b = users.event("u1", "b")
    light_c = users.event("u1", "c")
    light_c = UserUpdate(light_c.user_id, light_c.version, light_c.event, 3.0, light_c.history)
    step = ModelsLogic(model_params(warmup=4, k=3, hybrid_select=False))
    out = list(step.on_batch([full_a, full_b, light_c])[0])
    (news,) = [o for o in out if isinstance(o, ForUser)]
    assert news.tests == ((0, "a", 0), (1, "b", 1), (2, "c", 2))
    assert news.drafted_at == 1 and news.draft is not None  # the last full update
    assert news.draft.update is full_b and len(news.updates) == 3
    assert step.state.tested == 3


def test_the_models_state_keeps_nothing_per_user_for_outputs() -> None:
    """No provisional outputs, no last lists: a mostpop-served run leaves no user id in the
    models' snapshot but in the bounded samples of users the segments are fitted over (the
    RFM tiers': buyers only, and these users never buy; the segmenter's profiles)."""
    # no reorder allowance: no learn point waits in the event-time order with its user's id
    params = model_params(warmup=4, k=3, variant_models={"all": "mostpop"}, reorder_s=0.0)
    step = ModelsLogic(params)
    updates = [u for u in shopping(20) if u.event.type != "purchase"]
    for start in range(0, len(updates), 7):
        step.on_batch(updates[start : start + 7])
    assert not hasattr(step.state, "provisional") and not hasattr(step.state.recs, "shown")
    users = {f"u{n}" for n in range(20)}
    data = snapshots.decode(step.snapshot(), "models")
    sampled = data["segments"]["segmenter"].pop("sample")
    assert set(sampled["members"]) == users  # fewer than the sample's size: every one
    assert not strings(data) & users


def strings(data: object) -> set[str]:
    """Every string in plain snapshot data: keys, values, list items."""
    if isinstance(data, str):
        return {data}
    if isinstance(data, dict):
        return strings(list(data)) | strings(list(data.values()))
    if isinstance(data, list | tuple | set | frozenset):
        return set().union(*(strings(item) for item in data))
    return set()


def test_quality_adds_each_workers_batch_in_learning_order() -> None:
    folded = merged([Scores(((3, "all", 0),)), Scores(((1, "all", 1), (2, "all", 2)))])
    assert folded == [Scores(((3, "all", 0), (1, "all", 1), (2, "all", 2)))]
    assert merged([]) == [] and merged(folded) == folded
    params = QualityParams({"all": "hybrid"}, window=2, k=3)
    step = QualityLogic(params, None)
    (report,) = step.on_batch(folded)[0]
    # the window keeps seq 2 and 3 (rank 2, a miss), not 1 and 2 as arrival order would
    assert report.version == 3 and report.record["all"]["recall"] == 0.5
    assert report.record["all"]["mrr"] == 0.25
    resumed = QualityLogic(params, pickle.loads(pickle.dumps(step.snapshot())))
    assert resumed.state.report() == report


def aged_news(version: int, at: float, segment: str, rfm: str | None = None) -> ForUser:
    profile = {
        "features": {"recency_days": at / 86400.0},
        "device": None,
        "referrer": None,
        "top_categories": [],
        "last_event_type": "a",
        "last_event_ts": 10.0,
    }
    return ForUser("u1", aged=(AgedDraft(version, at, profile, segment, "Fans", rfm),))


def test_an_aged_profile_goes_out_only_when_it_moves_the_user_between_segments() -> None:
    """Compared with the last settled output's segments, not with Redis: what goes out does
    not depend on what the sink happened to hold."""
    step = logic()
    out, _ = step.on_batch([ForUser("u1", ((1.0, 10.0),), (), drafted(("x",), True, 3), 0)])
    assert [o.version for o in out if isinstance(o, UserOutput)] == [3]
    out, _ = step.on_batch([aged_news(3, 86400.0, "cluster:1")])  # as the event left them
    assert not [o for o in out if isinstance(o, UserOutput)]
    out, _ = step.on_batch([aged_news(3, 2 * 86400.0, "cluster:1", "at_risk")])
    sent = [o for o in out if isinstance(o, UserOutput)]
    assert [(o.version, o.aged_to, o.rfm_segment, o.recs) for o in sent] == [
        (3, 2 * 86400.0, "at_risk", ())
    ]
    out, _ = step.on_batch([aged_news(3, 3 * 86400.0, "cluster:1", "at_risk")])
    assert not [o for o in out if isinstance(o, UserOutput)]  # the same as the last sent
    step.on_batch([ForUser("u1", ((1.0, 20.0),), (), drafted(("y",), True, 4), 0)])
    out, _ = step.on_batch([aged_news(3, 4 * 86400.0, "cluster:2", "lost")])
    assert not [o for o in out if isinstance(o, UserOutput)]  # older than the event sent


def test_a_format_3_outputs_snapshot_resumes_with_aged_to_and_no_settled_segments() -> None:
    """Format 4 adds `UserOutput.aged_to` and the last settled segments to a user's outputs
    state: a format-3 one (a provisional output without aged_to) resumes."""
    step = logic()
    step.on_batch([ForUser("u1", ((1.0, 10.0),), (), drafted(("x",), False, 2), 0)])
    data = step.state.to_snapshot()
    old = {"shown": data["shown"], "provisional": data["provisional"][:-1]}
    blob = snapshots.MAGIC + (3).to_bytes(2, "big") + b"user_outputs\x00" + pickle.dumps(old)
    back = UserOutputsState.from_snapshot(snapshots.decode(blob, "user_outputs"))
    assert back.provisional == step.state.provisional and back.settled is None


def moves(out: Iterable[object]) -> list[int]:
    return [h for item in out if isinstance(item, Moves) for h in item.hours]


def test_a_change_of_settled_cluster_segment_is_a_move_at_its_event_hour() -> None:
    """Only settled segments count: the first is no move, a provisional one is none until
    it settles, and a settlement back to the same segment is none."""
    step = logic()
    news = ForUser("u1", ((1.0, 10.0),), (), drafted(("x",), settled=True), 0)
    assert moves(step.on_batch([news])[0]) == []  # the first settled segment
    news = ForUser("u1", ((2.0, 11.0),), (), drafted(("x",), version=2, segment="cluster:2"), 0)
    assert moves(step.on_batch([news])[0]) == []  # provisional: not yet
    settle = ForUser("u1", settlements=((2, "cluster:2", "Night owls", None),))
    out = list(step.on_batch([settle])[0])
    hour = int(full_update().event.ts // 3600)
    assert moves(out) == [hour]
    again = ForUser("u1", ((3.0, 12.0),), (), drafted(("x",), True, 3, "cluster:2"), 0)
    assert moves(step.on_batch([again])[0]) == []  # the same segment
    back = ForUser("u1", ((4.0, 13.0),), (), drafted(("x",), True, 4, "cluster:1"), 0)
    assert moves(step.on_batch([back])[0]) == [hour]
    warm = ForUser("u1", ((5.0, 14.0),), (), drafted(("x",), True, 5, ""), 0)
    assert moves(step.on_batch([warm])[0]) == []  # no cluster: not a move
