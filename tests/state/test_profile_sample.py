"""The segmenter's population: a bottom-k sample of users, each with their latest profile."""

from __future__ import annotations

import pickle
import random

import numpy as np
import pytest

from tailor.state.profile.event import Event
from tailor.state.profile.user import UserState, feature_horizons
from tailor.state.segments.profile_sample import ProfileSample, age_profile


def _fed(order: list[tuple[str, float]], size: int) -> ProfileSample:
    sample = ProfileSample(("x",), size=size, seed=3)
    for ts, (user, x) in enumerate(order):
        sample.learn_one(user, {"x": x}, {"x": x}, None, float(ts))
    return sample


def test_members_and_moments_do_not_depend_on_arrival_order() -> None:
    """Each user once, with their latest value: the same users and the same mean and
    variance (numpy's, over those users) whichever way the updates interleave."""
    updates = [(f"u{n % 60}", float(n)) for n in range(300)]
    shuffled = updates[:]
    random.Random(1).shuffle(shuffled)
    latest_first = _fed(updates, 25)
    # the same final values, reached in another order: each user's last update last
    finals = {user: x for user, x in updates}
    others = _fed([*shuffled, *finals.items()], 25)
    assert len(latest_first) == 25 and len(others) == 25
    assert [p.encoded for p in latest_first.profiles()] == [p.encoded for p in others.profiles()]
    values = np.array([p.encoded["x"] for p in latest_first.profiles()])
    assert latest_first.means["x"] == pytest.approx(values.mean(), abs=1e-9)
    assert latest_first.vars["x"] == pytest.approx(values.var(), abs=1e-9)
    assert others.means["x"] == pytest.approx(values.mean(), abs=1e-9)


def test_a_busy_user_counts_once() -> None:
    sample = _fed([("busy", 100.0)] * 50 + [("quiet", 0.0)], 10)
    assert sample.means["x"] == 50.0 and sample.transform_one({"x": 100.0}) == {"x": 1.0}


def test_a_forgotten_user_leaves_and_the_next_new_user_takes_the_place() -> None:
    sample = _fed([(f"u{n}", float(n)) for n in range(40)], 10)
    member = next(u for u in (f"u{n}" for n in range(40)) if u in sample)
    sample.forget(member)
    assert member not in sample and len(sample) == 9
    sample.learn_one("late", {"x": 1.0}, {"x": 1.0}, None, 99.0)
    assert "late" in sample and len(sample) == 10
    outsiders = [f"w{n}" for n in range(200)]
    for user in outsiders:
        sample.learn_one(user, {"x": 1.0}, {"x": 1.0}, None, 100.0)
    assert len(sample) == 10


def test_a_resumed_sample_standardises_to_the_same_bits() -> None:
    """The running sums travel in the snapshot as they are: recomputing them would change
    the last bits, and a resumed run would assign differently from an uninterrupted one."""
    rng = random.Random(5)
    updates = [(f"u{rng.randrange(80)}", rng.uniform(0, 1e4)) for _ in range(500)]
    whole = _fed(updates, 40)
    half = _fed(updates[:250], 40)
    resumed = ProfileSample.from_snapshot(pickle.loads(pickle.dumps(half.to_snapshot())))
    for ts, (user, x) in enumerate(updates[250:], start=250):
        resumed.learn_one(user, {"x": x}, {"x": x}, None, float(ts))
    assert (resumed.means, resumed.vars) == (whole.means, whole.vars)


def test_an_aged_profile_from_a_learn_point_matches_the_users_own_aging_where_exact() -> None:
    """`age_profile` ages a profile from itself; where the windows have been left behind
    (recency, the 30-day purchases, the closed session) it reads what `aged_features` of
    the user's whole state reads."""
    user = UserState()
    user.update(Event("1", "u", "page_view", 1_700_000_000.0, item_id="a"))
    user.update(Event("2", "u", "purchase", 1_700_000_600.0, item_id="a", price=40.0))
    ts = user.watermark or 0.0
    later = ts + 45 * 86400.0
    aged = age_profile(user.features(), later - ts, feature_horizons())
    exact = user.aged_features(later)
    for name in ("recency_days", "purchases_30d", "spend_30d", "views_24h", "session_events"):
        assert aged[name] == pytest.approx(exact[name]), name
    assert aged["purchases_total"] == exact["purchases_total"] == 1.0
    assert age_profile({"recency_days": 364.0}, 5 * 86400.0, {}) == {"recency_days": 365.0}


def test_a_session_closed_from_the_features_alone_is_what_the_state_gives_past_the_gap() -> None:
    from tailor.state.profile.session import Session

    user = UserState()
    times = [0.0, 60.0, 5000.0, 5030.0, 5100.0, 20000.0]  # sessions of 2, 3 and 1 events
    for n, at in enumerate(times):
        user.update(Event(str(n), "u", "page_view", 1_700_000_000.0 + at, item_id="a"))
    later = 1_700_000_000.0 + 30000.0
    features = user.features()
    exact = user.session.aged(later)
    closed = Session.closed(features)
    for name, value in exact.items():
        assert closed[name] == pytest.approx(value), name
    assert closed["bounce_rate"] == pytest.approx(1 / 3)
