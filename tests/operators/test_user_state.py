"""The user_state step in a real Bytewax flow: dedup, lateness, versions, snapshots."""

from __future__ import annotations

import dataclasses
import pickle
from datetime import timedelta
from pathlib import Path
from typing import Any

import bytewax.operators as op
import orjson
import pytest
from bytewax.dataflow import Dataflow
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.testing import TestingSink, TestingSource, run_main
from prometheus_client import REGISTRY

from tailor.operators.records import (
    Accepted,
    DeadLetter,
    Erasure,
    Forget,
    InputDeletion,
    Progress,
    Stamp,
    UserUpdate,
)
from tailor.operators.user_state import UserStateLogic, UserStateParams, user_state
from tailor.state import snapshots
from tailor.state.profile.context import CONTEXT_FEATURES
from tailor.state.profile.event import Event, event_to_dict
from tailor.state.profile.user import FEATURE_NAMES
from tests.settings_support import state_params


def acc(event_id: str, user: str, ts: float, type_: str = "product_view", **kw: Any) -> Accepted:
    event = Event(event_id=event_id, user_id=user, type=type_, ts=ts, **kw)
    return Accepted(event=event, read_at=123.0)


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def build_flow(items: list[Any], out: list[Any], params: UserStateParams) -> Dataflow:
    flow = Dataflow("user_state_test")
    events = op.input("in", flow, TestingSource(items))
    keyed = op.key_on("key", events, lambda a: a.event.user_id)
    updates = user_state("user_state", keyed, params)
    op.output("out", updates, TestingSink(out))
    return flow


def by_user(out: list[tuple[str, Any]], user: str) -> list[Any]:
    return [value for key, value in out if key == user]


def test_flow_drops_duplicates_dead_letters_late_events_and_counts_versions() -> None:
    items = [
        acc("a1", "alice", 1000.0, item_id="m1", category=("jazz",), device="mobile"),
        acc("b1", "bob", 5000.0, "page_view"),
        acc("a2", "alice", 1100.0, "click", item_id="m2"),
        acc("a1", "alice", 1000.0, item_id="m1"),  # duplicate id: dropped
        acc("a3", "alice", 700.0, "page_view"),  # 400 s behind: late
        acc("a4", "alice", 900.0, "page_view"),  # 200 s behind: within lateness
        acc("b2", "bob", 4699.0, "search"),  # 301 s behind: late
        acc("b3", "bob", 4700.0, "search"),  # exactly 300 s behind: accepted
        acc("a5", "alice", 1200.0, "purchase", item_id="m1", price=9.5, quantity=2),
        acc("b1", "bob", 9999.0, "click"),  # same id, other content, within horizon: dropped
    ]
    dup_before = metric("tailor_events_total", type="product_view", outcome="duplicate")
    late_before = metric("tailor_dead_letters_total", reason="late")
    users_before = metric("tailor_active_users")
    out: list[tuple[str, UserUpdate | DeadLetter]] = []

    run_main(build_flow(items, out, state_params()))

    alice = by_user(out, "alice")
    assert [type(v).__name__ for v in alice] == [
        "UserUpdate", "UserUpdate", "DeadLetter", "UserUpdate", "UserUpdate"
    ]  # fmt: skip
    updates = [v for v in alice if isinstance(v, UserUpdate)]
    assert [u.version for u in updates] == [1, 2, 3, 4]
    assert [u.event.event_id for u in updates] == ["a1", "a2", "a4", "a5"]
    last = updates[-1]
    assert last.user_id == "alice" and last.read_at == 123.0
    assert tuple(last.features) == FEATURE_NAMES + CONTEXT_FEATURES
    assert last.features["session_events"] == 4.0
    assert last.features["spend_total"] == 19.0
    assert last.features["session_duration"] == 300.0  # 900 joined without moving the start
    assert last.history == ("m2", "m1")
    assert last.purchased == frozenset({"m1"})
    assert last.device == "mobile"
    assert last.top_categories[0][0] == "jazz"

    late = alice[2]
    assert late == DeadLetter(
        reason="late",
        detail="400s behind watermark",
        payload=orjson.dumps(event_to_dict(items[4].event)),
        origin="user_state",
        offset="a3",
    )

    bob = by_user(out, "bob")
    assert [getattr(v, "version", None) for v in bob] == [1, None, 2]
    assert isinstance(bob[1], DeadLetter) and bob[1].detail == "301s behind watermark"
    assert bob[2].event.event_id == "b3"

    assert metric("tailor_events_total", type="product_view", outcome="duplicate") == (
        dup_before + 1
    )
    assert metric("tailor_dead_letters_total", reason="late") == late_before + 2
    assert metric("tailor_active_users") == users_before + 2


def test_event_id_is_forgotten_after_the_dedup_horizon() -> None:
    params = state_params(dedup_horizon_s=100.0, allowed_lateness_s=300.0)
    logic = UserStateLogic(params)
    first, _ = logic.on_batch([acc("x", "u", 0.0)])
    dup, _ = logic.on_batch([acc("x", "u", 50.0)])
    logic.on_batch([acc("y", "u", 200.0)])
    again, _ = logic.on_batch([acc("x", "u", 150.0)])  # x (ts 0) left the horizon at wm 200
    assert [len(list(first)), len(list(dup))] == [1, 0]
    (update,) = list(again)
    assert isinstance(update, UserUpdate) and update.version == 3
    assert logic.state.seen_ids == 2  # x(150) and y(200); x(0) was evicted


def test_dedup_memory_is_bounded_by_the_horizon() -> None:
    logic = UserStateLogic(state_params(dedup_horizon_s=1000.0))
    for i in range(5000):
        logic.on_batch([acc(f"e{i}", "u", float(i * 10))])
    assert logic.state.seen_ids == 100
    assert logic.state.version == 5000


def test_every_stamped_event_leaves_as_an_update_or_as_progress() -> None:
    stamp = Stamp("s", 4, 5)

    def stamped(event_id: str, ts: float, **kw: Any) -> Accepted:
        return dataclasses.replace(acc(event_id, "u", ts, **kw), stamp=stamp)

    logic = UserStateLogic(state_params(allowed_lateness_s=100.0))
    out = list(
        logic.on_batch(
            [
                stamped("e1", 1000.0),
                stamped("e1", 1000.0),  # duplicate
                stamped("e2", 500.0),  # late
                stamped("e3", 1010.0),
                stamped("e4", 1020.0, consent=False),  # an opt-out: erased
            ]
        )[0]
    )
    kinds = [type(item).__name__ for item in out]
    assert kinds == [
        "UserUpdate",
        "Progress",
        "DeadLetter",
        "Progress",
        "UserUpdate",
        "Erasure",
        "Progress",
    ]
    assert [u.stamp for u in out if isinstance(u, UserUpdate)] == [stamp, stamp]
    assert [p.ts for p in out if isinstance(p, Progress)] == [1000.0, 500.0, 1020.0]
    (after,) = logic.on_batch([stamped("e5", 1030.0)])[0]  # opted out: dropped, but counted
    assert after == Progress(stamp, 1030.0)


def test_snapshot_is_an_immutable_copy_that_pickles_and_resumes() -> None:
    params = state_params(ttl_s=0.0)  # kept for ever: no expiry timer
    logic = UserStateLogic(params)
    logic.on_batch([acc("e1", "u", 0.0, category=("a",))])
    snap = logic.snapshot()
    logic.on_batch([acc("e2", "u", 10.0)])
    assert (snapshots.decode(snap, "user")["version"], logic.state.version) == (1, 2)

    resumed = UserStateLogic(params, pickle.loads(pickle.dumps(logic.snapshot())))
    assert list(resumed.on_batch([acc("e2", "u", 10.0)])[0]) == []  # remembered across pickling
    (update,) = list(resumed.on_batch([acc("e3", "u", 20.0)])[0])
    assert isinstance(update, UserUpdate)
    assert update.version == 3
    assert update.features["session_events"] == 3.0
    assert resumed.notify_at() is None


def test_recovery_resumes_state_after_an_abort(tmp_path: Path) -> None:
    init_db_dir(tmp_path, 1)
    recovery = RecoveryConfig(str(tmp_path))
    items: list[Any] = [
        acc("e1", "u", 0.0),
        acc("e2", "u", 10.0),
        TestingSource.ABORT(),
        acc("e2", "u", 10.0),  # re-delivered after the crash: a duplicate
        acc("e3", "u", 20.0),
    ]
    first: list[tuple[str, Any]] = []
    run_main(build_flow(items, first, state_params()), epoch_interval=timedelta(0),
             recovery_config=recovery)  # fmt: skip
    assert [v.version for _, v in first] == [1, 2]

    second: list[tuple[str, Any]] = []
    run_main(build_flow(items, second, state_params()), epoch_interval=timedelta(0),
             recovery_config=recovery)  # fmt: skip
    assert [(v.event.event_id, v.version) for _, v in second] == [("e3", 3)]
    assert second[0][1].features["session_events"] == 3.0


@pytest.mark.parametrize(
    ("lag", "text"), [(300.5, "300.5"), (12345.25, "12345.25"), (2e6, "2000000")]
)
def test_late_detail_is_plain_seconds(lag: float, text: str) -> None:
    logic = UserStateLogic(state_params())
    logic.on_batch([acc("a", "u", 3e6)])
    (letter,) = list(logic.on_batch([acc("b", "u", 3e6 - lag)])[0])
    assert isinstance(letter, DeadLetter)
    assert letter.detail == f"{text}s behind watermark"
    assert logic.state.version == 1


def test_profile_is_filled_at_learn_points_and_at_the_last_accepted_update_only() -> None:
    params = state_params(learn_every=3)
    logic = UserStateLogic(params)
    batch = [acc(f"e{i}", "u", 100.0 * i, item_id=f"m{i}", device="mobile") for i in range(6)]
    batch += [acc("e2", "u", 700.0), acc("old", "u", 0.0)]  # duplicate, then late: both refused
    out, _ = logic.on_batch(batch)
    updates = [u for u in out if isinstance(u, UserUpdate)]
    assert [(u.version, u.full) for u in updates] == [
        (1, True), (2, False), (3, False), (4, True), (5, False), (6, True)
    ]  # fmt: skip
    assert isinstance(out[-1], DeadLetter)
    light, last = updates[1], updates[-1]
    assert light.history == ("m0", "m1") and light.event.event_id == "e1"
    assert (light.features, light.device, light.top_categories, light.purchased) == (
        None, None, (), frozenset()
    )  # fmt: skip
    # the last accepted update carries the state right after it, the refusals changed nothing
    assert last.event.event_id == "e5" and last.features == logic.state.features()
    assert last.history == tuple(f"m{i}" for i in range(6)) and last.device == "mobile"
    alone = UserStateLogic(params)
    for i in range(6):  # one event per batch: every update is a batch's last, so full
        (single,) = alone.on_batch([batch[i]])[0]
        assert isinstance(single, UserUpdate) and single.full
    assert single.features == last.features


def test_learn_every_must_be_positive() -> None:
    with pytest.raises(ValueError, match="learn_every"):
        state_params(learn_every=0)


def test_an_opted_out_users_events_are_dropped_and_their_entries_handed_on_for_deletion() -> None:
    logic = UserStateLogic(state_params())
    logic.on_batch([acc("f1", "frank", 1000.0)])
    out, _ = logic.on_batch([Forget("frank", "opt_out", opt_out=True)])
    assert [type(item) for item in out] == [Erasure]
    stamp = Stamp("t:events:1", 0, 2)
    later = dataclasses.replace(acc("f2", "frank", 1100.0), stamp=stamp, origin="t:events:1")
    out, _ = logic.on_batch(
        [dataclasses.replace(later, offset="5-0"), acc("f3", "frank", 1200.0)]  # no origin
    )
    assert out == [InputDeletion("t:events:1", "5-0"), Progress(stamp, 1100.0)]


def test_users_opted_out_when_the_worker_started_are_dropped_from_their_first_event() -> None:
    """The opt-out set is known before the control stream's replay of it reaches the user."""
    params = state_params(opted_out=frozenset({"frank"}))
    event = dataclasses.replace(acc("f1", "frank", 1000.0), origin="t:events:0", offset="1-0")
    out, _ = UserStateLogic(params).on_batch([event])
    assert out == [InputDeletion("t:events:0", "1-0")]
    out, _ = UserStateLogic(params).on_batch([acc("g1", "gina", 1000.0)])
    assert [type(item) for item in out] == [UserUpdate]


def test_a_state_resumed_from_before_the_opt_out_is_erased_at_its_first_batch() -> None:
    """The snapshot predates the opt-out, whose control entry may already be deleted: the
    start-up opt-out set erases the user before replayed events could re-create them."""
    before = UserStateLogic(state_params())
    before.on_batch([acc("f1", "frank", 1000.0, item_id="m1")])
    params = state_params(opted_out=frozenset({"frank"}))
    resumed = UserStateLogic(params, before.snapshot())
    replayed = dataclasses.replace(acc("f2", "frank", 1100.0), origin="t:events:0", offset="2-0")
    out, _ = resumed.on_batch([replayed])
    assert out == [Erasure("frank", "opt_out", ("m1",)), InputDeletion("t:events:0", "2-0")]
    assert resumed.state.opted_out


def test_a_late_letter_points_at_its_input() -> None:
    """Its origin and offset are those of the input entry, not the event id: two users may
    send the same event id, and each late input must keep its own dead letter (the dead-letter
    sink writes one letter per origin and offset)."""
    placed = [
        dataclasses.replace(acc(eid, user, ts), origin="t:events:0", offset=f"{n}-0")
        for n, (eid, user, ts) in enumerate(
            [("e1", "ann", 1000.0), ("e1", "bo", 1000.0), ("e2", "ann", 1.0), ("e2", "bo", 1.0)]
        )
    ]
    out: list[Any] = []
    run_main(build_flow(placed, out, state_params()))
    letters = [v for _, v in out if isinstance(v, DeadLetter)]
    assert sorted((d.origin, d.offset) for d in letters) == [
        ("t:events:0", "2-0"),
        ("t:events:0", "3-0"),
    ]
