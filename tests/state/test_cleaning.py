"""How the feature pipeline treats the real data's odd values (README, "Odd values").

Online Retail holds an order of 80,995 units (later cancelled) and negative prices; CDNOW
holds $0 orders. Each is taken through the worker's own adapter and validation
(`tailor.state.profile.event.event_from_dict`) into per-user state, as a replay would."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import orjson
import pytest

from tailor.operators.replay.adapters import read_cdnow, read_online_retail
from tailor.state.profile.event import Event, Invalid, event_from_dict
from tailor.state.profile.user import UserState
from tailor.state.segments.segmenter import TRANSFORMS

TYPES = frozenset({"purchase", "page_view"})


def validated(payloads: list[bytes]) -> list[Event]:
    events = []
    for raw in payloads:
        event = event_from_dict(orjson.loads(raw), TYPES)
        assert not isinstance(event, Invalid), (raw, event)
        events.append(event)
    return events


def profiles(events: list[Event]) -> dict[str, dict[str, float]]:
    users: dict[str, UserState] = {}
    for event in events:
        users.setdefault(event.user_id, UserState()).update(event)
    return {user: state.features() for user, state in users.items()}


@pytest.mark.slow
def test_a_huge_order_stays_within_a_few_deviations_once_encoded(data_dir: Path) -> None:
    """The 80,995-unit order passes validation (quantities up to 1,000,000) and counts in full
    in the customer's spend, as it was paid; the clusterer's signed log1p keeps that customer
    within a few standard deviations, where the raw spend puts them more than 15 away (the
    largest wholesaler over 30)."""
    events = validated(
        list(read_online_retail(data_dir / "online-retail" / "online_retail.csv.gz"))
    )
    huge = max(events, key=lambda e: e.quantity)
    assert huge.quantity == 80_995
    features = profiles(events)
    spend = np.array([f["spend_total"] for f in features.values()])
    assert features[huge.user_id]["spend_total"] >= huge.amount
    raw_z = (spend - spend.mean()) / spend.std()
    log = np.array([TRANSFORMS["log"][0](value) for value in spend])
    log_z = (log - log.mean()) / log.std()
    customer = list(features).index(huge.user_id)
    assert raw_z.max() > 30 and abs(raw_z[customer]) > 15
    assert abs(log_z).max() < 6 and abs(log_z[customer]) < 5


def test_zero_dollar_orders_count_as_purchases_without_spend(data_dir: Path) -> None:
    payloads = list(read_cdnow(data_dir / "cdnow" / "cdnow_master.csv"))
    events = validated(payloads)
    zero = [e for e in events if e.price == 0.0]
    assert len(zero) == 80
    features = profiles(events)
    orders = Counter(e.user_id for e in events)
    paid: dict[str, float] = {}
    for e in events:
        paid[e.user_id] = paid.get(e.user_id, 0.0) + e.amount
    for user in {e.user_id for e in zero}:
        assert features[user]["purchases_total"] == orders[user]
        assert features[user]["spend_total"] == pytest.approx(paid[user])
    only_free = [u for u in orders if paid[u] == 0.0]
    assert only_free and all(features[u]["spend_total"] == 0.0 for u in only_free)


def test_negative_prices_are_refused_and_a_purchase_without_price_spends_nothing() -> None:
    base = {"event_id": "e", "user_id": "u", "type": "purchase", "ts": 1_700_000_000}
    refused = event_from_dict({**base, "price": -2.5}, TYPES)
    assert refused == Invalid("out_of_range", "price")
    state = UserState()
    unpriced = event_from_dict(base, TYPES)
    assert isinstance(unpriced, Event)
    state.update(unpriced)
    assert (state.features()["purchases_total"], state.features()["spend_total"]) == (1.0, 0.0)
