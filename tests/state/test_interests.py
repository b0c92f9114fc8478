"""Event-time decayed category interests."""

from __future__ import annotations

import pickle

import pytest

from tailor.state.profile.event import Event
from tailor.state.profile.interests import Interests

H = 1000.0


def ev(ts: float, *cats: str) -> Event:
    return Event(event_id=str(ts), user_id="u", type="click", ts=ts, category=cats)


def test_empty_has_no_top() -> None:
    assert Interests().top() == ()


def test_each_category_gets_one_and_halves_per_halflife() -> None:
    it = Interests(halflife_s=H)
    it.update(ev(0.0, "a", "b"))
    it.update(ev(H, "a"))
    assert it.top() == (("a", 1.5), ("b", 0.5))
    it.update(ev(3 * H))  # no category: time still moves
    assert it.top() == (("a", pytest.approx(0.375)), ("b", pytest.approx(0.125)))


def test_ties_sort_by_name_and_top_n_limits() -> None:
    it = Interests(halflife_s=H, top_n=2)
    it.update(ev(0.0, "c", "a", "b"))
    assert it.top() == (("a", 1.0), ("b", 1.0))


def test_late_event_gets_its_own_decay() -> None:
    it = Interests(halflife_s=H)
    it.update(ev(2 * H, "a"))
    it.update(ev(H, "b"))  # late by one half-life
    assert it.score("a") == 1.0
    assert it.score("b") == pytest.approx(0.5)


def test_matches_direct_sum_across_rebases() -> None:
    it = Interests(halflife_s=H)
    times = [i * 37.0 * H for i in range(10)]  # crosses the 64-half-life rebase several times
    for ts in times:
        it.update(ev(ts, "x"))
    expected = sum(0.5 ** ((times[-1] - t) / H) for t in times)
    assert it.score("x") == pytest.approx(expected, rel=1e-12)
    assert it._anchor > 0.0


def test_bounded_dict_drops_the_weakest() -> None:
    it = Interests(halflife_s=H, max_categories=3)
    it.update(ev(0.0, "old"))
    it.update(ev(H, "mid"))
    it.update(ev(H, "mid"))
    it.update(ev(2 * H, "new"))
    it.update(ev(2 * H, "newest"))  # evicts "old", the weakest
    assert len(it) == 3
    assert it.score("old") == 0.0
    assert [c for c, _ in it.top()] == ["mid", "new", "newest"]


def test_pickle_round_trip() -> None:
    it = Interests(halflife_s=H)
    it.update(ev(0.0, "a"))
    it.update(ev(H, "b"))
    assert pickle.loads(pickle.dumps(it)).top() == it.top() == (("b", 1.0), ("a", 0.5))
