"""Recency, frequency and monetary features in event time."""

from __future__ import annotations

import pickle

import pytest

from tailor.state.profile.event import Event
from tailor.state.profile.rfm import RFM

DAY = 86400.0


def buy(ts: float, price: float, quantity: int = 1) -> Event:
    return Event(
        event_id=str(ts), user_id="u", type="purchase", ts=ts, price=price, quantity=quantity
    )


def view(ts: float) -> Event:
    return Event(event_id=f"v{ts}", user_id="u", type="page_view", ts=ts)


def test_never_purchased_is_capped_recency_and_zero_totals() -> None:
    r = RFM()
    r.update(view(0.0))
    assert (r.recency_days, r.purchases_30d, r.spend_30d) == (365.0, 0, 0.0)
    assert (r.purchases_total, r.spend_total) == (0, 0.0)


def test_spend_is_price_times_quantity_and_missing_price_is_zero() -> None:
    r = RFM()
    r.update(buy(0.0, 2.5, quantity=4))
    r.update(Event(event_id="np", user_id="u", type="purchase", ts=1.0))
    assert (r.purchases_total, r.spend_total, r.purchases_30d, r.spend_30d) == (2, 10.0, 2, 10.0)


def test_recency_grows_with_any_event_and_is_capped() -> None:
    r = RFM()
    r.update(buy(0.0, 1.0))
    r.update(view(1.5 * DAY))
    assert r.recency_days == 1.5
    r.update(view(400 * DAY))
    assert r.recency_days == 365.0


def test_window_slides_and_empties_exactly() -> None:
    r = RFM(window_s=30 * DAY)
    r.update(buy(0.0, 0.1))
    r.update(buy(10 * DAY, 0.2))
    r.update(buy(20 * DAY, 0.3))
    assert r.purchases_30d == 3
    assert r.spend_30d == pytest.approx(0.6)
    r.update(view(30 * DAY))  # (0, 30d]: the purchase at 0 is out
    assert (r.purchases_30d, r.spend_30d) == (2, pytest.approx(0.5))
    r.update(view(100 * DAY))
    assert (r.purchases_30d, r.spend_30d) == (0, 0.0)  # exactly 0.0, no rounding residue
    assert (r.purchases_total, r.spend_total) == (3, pytest.approx(0.6))


def test_late_purchase_keeps_last_purchase_and_enters_window() -> None:
    r = RFM(window_s=100.0)
    r.update(buy(1000.0, 5.0))
    r.update(buy(950.0, 7.0))
    r.update(buy(800.0, 11.0))  # outside (900, 1000]: totals only
    assert r.last_purchase == 1000.0
    assert (r.purchases_30d, r.spend_30d, r.purchases_total, r.spend_total) == (2, 12.0, 3, 23.0)
    r.update(view(1051.0))
    assert (r.purchases_30d, r.spend_30d) == (1, 5.0)


def test_pickle_round_trip() -> None:
    r = RFM()
    r.update(buy(0.0, 3.0))
    r.update(view(DAY))
    clone = pickle.loads(pickle.dumps(r))
    assert (clone.recency_days, clone.spend_30d, clone.purchases_total) == (1.0, 3.0, 1)
