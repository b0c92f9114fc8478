"""Sessions by inactivity gap in event time."""

from __future__ import annotations

import copy
import pickle

import pytest

from tailor.state.profile.event import Event
from tailor.state.profile.session import Session


def ev(ts: float, type_: str = "product_view", n: int = 0) -> Event:
    return Event(event_id=f"e{n}-{ts}", user_id="u", type=type_, ts=ts)


def feed(s: Session, *events: Event) -> Session:
    for e in events:
        s.update(e)
    return s


def test_empty_session_reads_zero() -> None:
    s = Session()
    assert (s.session_count, s.events, s.duration) == (0, 0, 0.0)
    assert (s.avg_duration, s.avg_events, s.bounce_rate) == (0.0, 0.0, 0.0)


def test_events_within_gap_share_a_session() -> None:
    s = feed(Session(gap_s=100.0), ev(0.0), ev(50.0, "click"), ev(150.0))
    assert s.session_count == 1
    assert s.events == 3
    assert s.product_views == 2
    assert s.duration == 150.0
    assert s.bounce_rate == 0.0  # the open session is not judged


def test_exact_gap_continues_and_longer_gap_splits() -> None:
    s = feed(Session(gap_s=100.0), ev(0.0), ev(100.0))
    assert s.session_count == 1
    s.update(ev(200.5))
    assert s.session_count == 2
    assert (s.events, s.duration, s.product_views) == (1, 0.0, 1)
    assert s.avg_duration == 100.0
    assert s.avg_events == 2.0


def test_averages_and_bounce_rate_over_completed_sessions() -> None:
    s = Session(gap_s=10.0)
    # sessions: [0, 5] (2 events), [100] (1), [200, 201, 204] (3), [500] (open)
    feed(s, ev(0), ev(5), ev(100), ev(200), ev(201), ev(204), ev(500, "page_view"))
    assert s.session_count == 4
    assert s.avg_duration == pytest.approx((5 + 0 + 4) / 3)
    assert s.avg_events == pytest.approx(2.0)
    assert s.bounce_rate == pytest.approx(1 / 3)
    assert (s.events, s.product_views) == (1, 0)


def test_late_event_joins_current_session_without_moving_its_end() -> None:
    s = feed(Session(gap_s=100.0), ev(1000.0), ev(1050.0))
    s.update(ev(1020.0))
    assert (s.last, s.events, s.duration) == (1050.0, 3, 50.0)
    s.update(ev(990.0))  # older than the start: the session now spans it
    assert (s.start, s.last, s.events, s.duration) == (990.0, 1050.0, 4, 60.0)
    assert s.session_count == 1


def test_pickle_and_deepcopy_keep_state_and_independence() -> None:
    s = feed(Session(gap_s=10.0), ev(0), ev(5), ev(100))
    clone = pickle.loads(pickle.dumps(s))
    deep = copy.deepcopy(s)
    for other in (clone, deep):
        assert (other.session_count, other.avg_duration, other.events) == (2, 5.0, 1)
    deep.update(ev(1000))
    assert (s.session_count, deep.session_count) == (2, 3)
