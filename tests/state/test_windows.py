"""Sliding event-time view counts."""

from __future__ import annotations

import pickle

import pytest

from tailor.state.profile.event import Event
from tailor.state.profile.windows import ViewWindows, window_name


def ev(ts: float, type_: str = "page_view") -> Event:
    return Event(event_id=str(ts), user_id="u", type=type_, ts=ts)


@pytest.mark.parametrize(
    ("seconds", "name"),
    [
        (3600, "1h"),
        (86400, "24h"),
        (604800, "7d"),
        (900, "15m"),
        (45, "45s"),
        (7200, "2h"),
        (172800, "2d"),
        (1.5, "1.5s"),
    ],
)
def test_window_name(seconds: float, name: str) -> None:
    assert window_name(seconds) == name


def test_window_name_rejects_nonpositive() -> None:
    with pytest.raises(ValueError):
        window_name(0)


def test_colliding_names_are_refused() -> None:
    with pytest.raises(ValueError, match="collide"):
        ViewWindows(windows_s=(3600, 3600.0))


def test_counts_are_half_open_on_the_left() -> None:
    w = ViewWindows(windows_s=(100,))
    for ts in (0.0, 50.0, 100.0):
        w.update(ev(ts))
    # now = 100: window (0, 100] excludes the view at 0
    assert w.get() == {"views_100s": 2}


def test_only_view_types_count_but_every_event_moves_now() -> None:
    w = ViewWindows()
    w.update(ev(0.0, "product_view"))
    w.update(ev(10.0, "page_view"))
    w.update(ev(20.0, "purchase"))
    assert w.get() == {"views_1h": 2, "views_24h": 2, "views_7d": 2}
    w.update(ev(3605.0, "search"))  # now moves; the first view slides out of the hour
    assert w.get() == {"views_1h": 1, "views_24h": 2, "views_7d": 2}
    w.update(ev(3700.0, "click"))
    assert w.get() == {"views_1h": 0, "views_24h": 2, "views_7d": 2}


def test_memory_is_trimmed_to_the_longest_window() -> None:
    w = ViewWindows(windows_s=(10, 100))
    for ts in range(1000):
        w.update(ev(float(ts)))
    assert len(w._views) == 100
    assert w.get() == {"views_10s": 10, "views_100s": 100}


def test_out_of_order_views_are_inserted_in_order() -> None:
    w = ViewWindows(windows_s=(100,))
    for ts in (0.0, 150.0, 120.0, 60.0, 40.0):
        w.update(ev(ts))
    # now 150: (50, 150] holds 60, 120, 150; 40 and 0 are outside
    assert w.get() == {"views_100s": 3}
    assert list(w._views) == [60.0, 120.0, 150.0]
    w.update(ev(219.0, "click"))
    assert w.get() == {"views_100s": 2}


def test_pickle_round_trip() -> None:
    w = ViewWindows()
    for ts in (0.0, 4000.0, 90000.0):
        w.update(ev(ts))
    assert (
        pickle.loads(pickle.dumps(w)).get()
        == w.get()
        == {"views_1h": 1, "views_24h": 2, "views_7d": 3}
    )
