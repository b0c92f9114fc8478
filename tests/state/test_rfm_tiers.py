"""RFM tiers: the score map, the tie rule, the customer sample, and agreement with batch RFM.

The batch reference is the textbook computation: every customer's final recency (days from
the last purchase to the end of the data, capped at 365), purchase count and spend; quintile
cut points over all customers by `np.quantile(..., method="inverted_cdf")`; the same score rule
and the same map. The streaming side replays the product's events in time order (CDNOW through
`tailor.operators.replay.adapters.read_cdnow`, Online Retail read the same way straight from the
CSV), keeps one `tailor.state.profile.rfm.RFM` per customer as the product does, and learns at every
purchase.
"""

from __future__ import annotations

import calendar
import csv
import gzip
import pickle
import random
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path

import orjson
import pytest

from tailor.operators.replay.adapters import read_cdnow
from tailor.state.profile.event import Event
from tailor.state.profile.rfm import RFM
from tailor.state.segments.batch_rfm import Values, batch_cuts, batch_tier
from tailor.state.segments.rfm_tiers import (
    TIER_LABELS,
    TIERS,
    RFMTiers,
    fm_score,
    score_higher_better,
    score_lower_better,
    score_map,
    tier_of,
)

DAY = 86400.0
CAP = 365.0


# --- the map and the score rule ----------------------------------------------------------


def test_map_covers_the_grid_with_every_tier() -> None:
    cells = score_map()
    assert len(cells) == 25
    assert set(cells.values()) == set(TIERS)
    assert list(TIER_LABELS) == list(TIERS)


@pytest.mark.parametrize(
    ("r", "fm", "tier"),
    [
        (5, 5, "champions"),
        (5, 4, "champions"),
        (4, 5, "loyal"),
        (3, 4, "loyal"),
        (5, 2, "potential_loyalists"),
        (5, 1, "new_customers"),
        (4, 1, "promising"),
        (3, 3, "need_attention"),
        (3, 1, "about_to_sleep"),
        (2, 4, "at_risk"),
        (1, 5, "cant_lose"),
        (2, 2, "hibernating"),
        (1, 2, "hibernating"),
        (1, 1, "lost"),
    ],
)
def test_cells_of_the_map(r: int, fm: int, tier: str) -> None:
    assert tier_of(r, fm) == tier


def test_scores_out_of_range_are_refused() -> None:
    with pytest.raises(ValueError):
        tier_of(0, 3)
    with pytest.raises(ValueError):
        tier_of(3, 6)


def test_fm_is_the_mean_rounded_down() -> None:
    assert [fm_score(f, m) for f, m in [(1, 1), (1, 2), (2, 2), (4, 5), (5, 5)]] == [1, 1, 2, 4, 5]


def test_a_value_equal_to_a_cut_point_takes_the_worse_score() -> None:
    # CDNOW's shape: most customers buy once, and most lapsed ones sit at the recency cap
    f_cuts = (1.0, 1.0, 2.0, 4.0)
    assert [score_higher_better(f, f_cuts) for f in (1, 2, 3, 4, 5)] == [1, 3, 4, 4, 5]
    r_cuts = (141.0, 365.0, 365.0, 365.0)
    assert [score_lower_better(r, r_cuts) for r in (365.0, 200.0, 141.0, 10.0)] == [1, 4, 4, 5]


# --- the estimator on small, hand-made streams --------------------------------------------


def learn_all(tiers: RFMTiers, customers: Iterable[tuple[str, Values]], now: float) -> None:
    for user, (r, f, m) in customers:
        tiers.learn_one(user, r, f, m, now=now)


def random_customers(n: int, seed: int) -> list[tuple[str, Values]]:
    """Integer recencies and frequencies (many ties), skewed spend."""
    rng = random.Random(seed)
    return [
        (
            f"u{i}",
            (
                float(rng.randrange(0, 366)),
                float(rng.choice([1, 1, 1, 2, 2, 3, 7])),
                round(rng.lognormvariate(3.0, 1.0), 2),
            ),
        )
        for i in range(n)
    ]


def test_warm_up_gives_no_tier_until_min_customers() -> None:
    tiers = RFMTiers(min_customers=5)
    customers = random_customers(5, seed=1)
    learn_all(tiers, customers[:4], now=100 * DAY)
    assert not tiers.ready
    assert tiers.cut_points() is None and tiers.tier(1.0, 3, 50.0) is None
    learn_all(tiers, customers[4:], now=100 * DAY)
    assert tiers.ready and tiers.tier(1.0, 3, 50.0) in TIERS


def test_never_bought_users_are_not_learned_and_get_no_tier() -> None:
    tiers = RFMTiers(min_customers=1)
    tiers.learn_one("prospect", CAP, 0, 0.0, now=10 * DAY)
    assert tiers.n_customers == 0 and "prospect" not in tiers
    assert tiers.now == 10 * DAY  # the clock still moves
    tiers.learn_one("buyer", 0.0, 1, 20.0, now=10 * DAY)
    assert tiers.tier(0.0, 1, 20.0) in TIERS
    assert tiers.tier(CAP, 0, 0.0) is None and tiers.scores(CAP, 0, 0.0) is None


def test_a_customer_counts_once_with_their_latest_values() -> None:
    tiers = RFMTiers(min_customers=1)
    for n in range(1, 101):
        tiers.learn_one("busy", 0.0, n, 10.0 * n, now=n * DAY)
    tiers.learn_one("quiet", 0.0, 1, 5.0, now=2 * DAY)
    assert tiers.n_customers == 2
    latest: list[Values] = [(0.0, 100, 1000.0), (98.0, 1, 5.0)]  # at the clock, day 100
    assert tiers.cut_points() == batch_cuts(latest)


def test_cut_points_equal_batch_quantiles_at_every_step() -> None:
    """The oracle of river's stats tests: incremental == batch after every update."""
    rng = random.Random(7)
    tiers = RFMTiers(sample_size=10_000, min_customers=1)
    latest: dict[str, tuple[float, float, float]] = {}  # user -> (last purchase ts, f, m)
    now = 0.0
    for _ in range(600):
        now += rng.choice([0.0, 3600.0, DAY])
        user = f"u{rng.randrange(150)}"
        _, f, m = latest.get(user, (0.0, 0, 0.0))
        latest[user] = (now, f + 1, m + rng.choice([5.0, 9.99, 20.0, 120.5]))
        tiers.learn_one(user, 0.0, f + 1, latest[user][2], now=now)
        values = [(min(CAP, (now - t) / DAY), f, m) for t, f, m in latest.values()]
        assert tiers.cut_points() == batch_cuts(values)


def test_the_sample_is_bounded_and_does_not_depend_on_arrival_order() -> None:
    customers = random_customers(2000, seed=3)
    shuffled = customers[:]
    random.Random(4).shuffle(shuffled)
    a, b = RFMTiers(sample_size=300), RFMTiers(sample_size=300)
    learn_all(a, customers, now=400 * DAY)
    learn_all(b, shuffled, now=400 * DAY)
    assert a.n_customers == b.n_customers == 300
    members = {user for user, _ in customers if user in a}
    assert members == {user for user, _ in customers if user in b}
    assert a.cut_points() == b.cut_points()
    sampled = [v for user, v in customers if user in a]
    assert a.cut_points() == batch_cuts(sampled)


def test_seeds_draw_different_samples() -> None:
    customers = random_customers(1000, seed=5)
    a, b = RFMTiers(sample_size=100, seed=0), RFMTiers(sample_size=100, seed=1)
    learn_all(a, customers, now=400 * DAY)
    learn_all(b, customers, now=400 * DAY)
    overlap = sum(1 for user, _ in customers if user in a and user in b)
    assert overlap < 50  # independent 10% samples share about 10 customers


def test_recency_cut_points_follow_the_clock() -> None:
    tiers = RFMTiers(min_customers=1)
    learn_all(tiers, [(f"u{i}", (float(i), 1, 10.0)) for i in range(10)], now=100 * DAY)
    before = tiers.cut_points()
    tiers.learn_one("prospect", CAP, 0, 0.0, now=110 * DAY)  # no purchase, time passes
    after = tiers.cut_points()
    assert before is not None and after is not None
    assert after[0] == tuple(c + 10.0 for c in before[0])
    assert after[1:] == before[1:]


def test_forget_removes_the_user_and_their_values() -> None:
    customers = random_customers(50, seed=6)
    tiers = RFMTiers(min_customers=1)
    learn_all(tiers, customers, now=400 * DAY)
    tiers.forget("u0")
    tiers.forget("never-seen")
    assert "u0" not in tiers and tiers.n_customers == 49
    assert tiers.cut_points() == batch_cuts([v for user, v in customers if user != "u0"])


def test_pickle_round_trip_keeps_tiers_and_learns_identically() -> None:
    customers = random_customers(3000, seed=8)
    tiers = RFMTiers(sample_size=500)
    learn_all(tiers, customers[:2000], now=400 * DAY)
    clone = pickle.loads(pickle.dumps(tiers))
    probes = [v for _, v in random_customers(200, seed=9)]
    assert [clone.tier(*v) for v in probes] == [tiers.tier(*v) for v in probes]
    learn_all(tiers, customers[2000:], now=401 * DAY)
    learn_all(clone, customers[2000:], now=401 * DAY)
    assert clone.cut_points() == tiers.cut_points()
    assert [clone.tier(*v) for v in probes] == [tiers.tier(*v) for v in probes]


# --- real purchases: CDNOW and UCI Online Retail -------------------------------------------


def events(payloads: Iterator[bytes]) -> Iterator[Event]:
    """The adapters' payloads as events (they are valid: built straight, without validation)."""
    for raw in payloads:
        obj = orjson.loads(raw)
        yield Event(
            obj["event_id"],
            obj["user_id"],
            obj["type"],
            float(obj["ts"]),
            price=obj.get("price"),
            quantity=obj.get("quantity", 1),
        )


def retail_events(path: Path) -> Iterator[Event]:
    """`read_online_retail`'s events, read straight from the CSV: the JSON round trip of the
    adapter doubles this test's time. Same RFM-clean subset (known customer, no "C" invoice,
    Quantity > 0, UnitPrice > 0), same UTC reading of InvoiceDate; checked by its totals."""
    with gzip.open(path, "rt", newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        col = {name: i for i, name in enumerate(next(reader))}
        c_inv, c_qty, c_date = col["InvoiceNo"], col["Quantity"], col["InvoiceDate"]
        c_price, c_cust = col["UnitPrice"], col["CustomerID"]
        last_date, ts = "", 0.0
        for index, row in enumerate(reader):
            customer, quantity, price = row[c_cust], int(row[c_qty]), float(row[c_price])
            if not customer or row[c_inv].startswith("C") or quantity <= 0 or price <= 0:
                continue
            if row[c_date] != last_date:
                last_date = row[c_date]
                ts = float(calendar.timegm(datetime.fromisoformat(last_date).timetuple()))
            yield Event(f"retail-{index}", customer, "purchase", ts, price=price, quantity=quantity)


def replay(stream: Iterable[Event], tiers: RFMTiers) -> tuple[dict[str, RFM], float]:
    """Each customer's RFM state as the product keeps it; learn at every purchase."""
    users: dict[str, RFM] = {}
    end = 0.0
    for event in stream:
        rfm = users.get(event.user_id)
        if rfm is None:
            rfm = users[event.user_id] = RFM()
        rfm.update(event)
        assert rfm.now is not None
        tiers.learn_one(
            event.user_id, rfm.recency_days, rfm.purchases_total, rfm.spend_total, now=rfm.now
        )
        end = max(end, event.ts)
    return users, end


def final_values(users: dict[str, RFM], end: float) -> dict[str, Values]:
    """Recency at the end of the data (not at each user's own last event), count, spend."""
    out: dict[str, Values] = {}
    for user, rfm in sorted(users.items()):
        assert rfm.last_purchase is not None
        out[user] = (
            min(CAP, (end - rfm.last_purchase) / DAY),
            rfm.purchases_total,
            rfm.spend_total,
        )
    return out


def agreement(tiers: RFMTiers, finals: dict[str, Values]) -> float:
    reference = batch_cuts(list(finals.values()))
    same = sum(1 for v in finals.values() if tiers.tier(*v) == batch_tier(v, reference))
    return same / len(finals)


def check_real_data(stream: Iterable[Event], purchases: int, customers: int, spend: float) -> float:
    """The replay is the documented data set, and the estimator matches batch RFM on it."""
    tiers = RFMTiers()
    users, end = replay(stream, tiers)
    assert sum(rfm.purchases_total for rfm in users.values()) == purchases
    assert len(users) == customers
    assert sum(rfm.spend_total for rfm in users.values()) == pytest.approx(spend, abs=0.01)
    assert tiers.now == end and tiers.n_customers == min(customers, tiers.sample_size)
    finals = final_values(users, end)
    # exact on the sample it keeps ...
    assert tiers.cut_points() == batch_cuts([v for user, v in finals.items() if user in tiers])
    # ... and within the sampling error of the standard RFM over every customer
    return agreement(tiers, finals)


@pytest.mark.slow
def test_cdnow_tiers_agree_with_batch_rfm(data_dir: Path) -> None:
    stream = events(read_cdnow(data_dir / "cdnow" / "cdnow_master.csv"))
    assert check_real_data(stream, 69_659, 23_570, spend=2_500_315.63) >= 0.98  # measured 0.995


@pytest.mark.slow
def test_online_retail_tiers_agree_with_batch_rfm(data_dir: Path) -> None:
    stream = retail_events(data_dir / "online-retail" / "online_retail.csv.gz")
    assert check_real_data(stream, 397_884, 4_338, spend=8_911_407.90) >= 0.98  # measured 0.991
