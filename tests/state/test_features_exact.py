"""Incremental features == a straightforward batch computation on the same rows.

River checks every statistic against numpy after every update; this does the same for the
per-user profile. Each reference below recomputes a feature from scratch from the user's raw
events so far, with no shared code path: sessions by splitting the sorted times at gaps,
windows and RFM by filtering on time, interests by summing decays directly.
"""

from __future__ import annotations

import csv
import math
import random
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from tailor.state.profile.context import CONTEXT_FEATURES
from tailor.state.profile.event import Event
from tailor.state.profile.user import FEATURE_NAMES, UserState

GAP = 1800.0
DAY = 86400.0
WINDOWS = {"views_1h": 3600.0, "views_24h": DAY, "views_7d": 7 * DAY}
VIEW_TYPES = {"page_view", "product_view"}
INTERACTIONS = {"product_view", "click", "add_to_cart", "purchase"}
HALFLIFE = 7 * DAY
INT_FEATURES = {
    "session_events",
    "product_views",
    "session_count",
    *WINDOWS,
    "purchases_30d",
    "purchases_total",
}


# ---------------------------------------------------------------- batch references


def ref_sessions(events: list[Event], now: float | None = None) -> dict[str, float]:
    """Split the (time-ordered) events wherever the gap exceeds GAP; at a `now` more than GAP
    after the last event, every session is done."""
    groups: list[list[Event]] = []
    for e in events:
        if groups and e.ts - groups[-1][-1].ts <= GAP:
            groups[-1].append(e)
        else:
            groups.append([e])
    current, done = groups[-1], groups[:-1]
    if now is not None and now - max(e.ts for e in events) > GAP:
        current, done = [], groups
    durations = [g[-1].ts - g[0].ts for g in done]
    return {
        "session_duration": current[-1].ts - current[0].ts if current else 0.0,
        "session_events": len(current),
        "product_views": sum(e.type == "product_view" for e in current),
        "session_count": len(groups),
        "avg_session_duration": sum(durations) / len(done) if done else 0.0,
        "avg_session_events": sum(len(g) for g in done) / len(done) if done else 0.0,
        "bounce_rate": sum(len(g) == 1 for g in done) / len(done) if done else 0.0,
    }


def ref_windows(events: list[Event], now: float | None = None) -> dict[str, float]:
    now = max(e.ts for e in events) if now is None else now
    return {
        name: sum(e.type in VIEW_TYPES and now - w < e.ts <= now for e in events)
        for name, w in WINDOWS.items()
    }


def ref_rfm(events: list[Event], now: float | None = None) -> dict[str, float]:
    now = max(e.ts for e in events) if now is None else now
    buys = [e for e in events if e.type == "purchase"]
    recent = [e for e in buys if now - 30 * DAY < e.ts <= now]
    last = max((e.ts for e in buys), default=None)
    return {
        "recency_days": 365.0 if last is None else min(365.0, (now - last) / DAY),
        "purchases_30d": len(recent),
        "spend_30d": sum(e.amount for e in recent),
        "purchases_total": len(buys),
        "spend_total": sum(e.amount for e in buys),
    }


def ref_context(events: list[Event]) -> dict[str, float]:
    """The context mix from scratch: local clock times from zoneinfo / fixed offsets, the
    mean of the unit vectors, shares by device and by channel word or site."""
    hours, days, weekend = [], [], 0
    for e in events:
        if e.tz is None:
            local = datetime.fromtimestamp(e.ts, UTC)
        elif e.tz[0] in "+-":
            sign = -1 if e.tz[0] == "-" else 1
            offset = timedelta(hours=int(e.tz[1:3]), minutes=int(e.tz[4:6]))
            local = datetime.fromtimestamp(e.ts, UTC) + sign * offset
        else:
            local = datetime.fromtimestamp(e.ts, ZoneInfo(e.tz))
        seconds = local.hour * 3600 + local.minute * 60 + local.second
        hours.append(2 * math.pi * seconds / 86400)
        days.append(2 * math.pi * (local.weekday() * 86400 + seconds) / (7 * 86400))
        weekend += local.weekday() in (5, 6)
    n = len(events)
    out = {
        "hour_sin": sum(map(math.sin, hours)) / n,
        "hour_cos": sum(map(math.cos, hours)) / n,
        "weekday_sin": sum(map(math.sin, days)) / n,
        "weekday_cos": sum(map(math.cos, days)) / n,
        "weekend_share": weekend / n,
    }
    for device in ("desktop", "mobile", "tablet"):
        out[f"{device}_share"] = sum(e.device == device for e in events) / n
    channels = {
        None: "direct",
        "google": "search",
        "email": "email",
        "ads": "ads",
        "https://www.instagram.com/p/1": "social",
        "shop.example": "referral",
    }
    for channel in ("direct", "search", "social", "email", "ads", "referral"):
        out[f"{channel}_share"] = sum(channels.get(e.referrer) == channel for e in events) / n
    return out


def ref_features(events: list[Event]) -> dict[str, float]:
    return ref_sessions(events) | ref_windows(events) | ref_rfm(events) | ref_context(events)


def ref_interest_scores(events: list[Event]) -> dict[str, float]:
    now = max(e.ts for e in events)
    scores: dict[str, float] = defaultdict(float)
    for e in events:
        for c in e.category:
            scores[c] += 0.5 ** ((now - e.ts) / HALFLIFE)
    return scores


def ref_recent_items(events: list[Event], types: set[str], limit: int) -> tuple[str, ...]:
    """Items by their last occurrence, oldest first, the newest `limit` of them."""
    last_seen = {e.item_id: i for i, e in enumerate(events) if e.type in types and e.item_id}
    return tuple(item for item, _ in sorted(last_seen.items(), key=lambda kv: kv[1]))[-limit:]


def ref_latest(events: list[Event], field: str) -> str | None:
    """Value of `field` on the newest event (by time, then arrival) that carries one."""
    carrying = [(e.ts, i, getattr(e, field)) for i, e in enumerate(events)]
    carrying = [c for c in carrying if c[2] is not None]
    return max(carrying)[2] if carrying else None


# ---------------------------------------------------------------- comparison helpers


def assert_features(got: dict[str, float], want: dict[str, float], where: str) -> None:
    assert tuple(got) == FEATURE_NAMES + CONTEXT_FEATURES
    for name, value in want.items():
        if name in INT_FEATURES:
            assert got[name] == value, f"{where}: {name}"
        else:  # math.isclose, not pytest.approx: it is called ~100k times
            assert close(got[name], value), f"{where}: {name} {got[name]!r} != {value!r}"


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


def assert_top(got: tuple[tuple[str, float], ...], ref: dict[str, float], n: int) -> None:
    """Tie-robust: every returned score is right, and they are the n best reference scores."""
    best = sorted(ref.values(), reverse=True)[:n]
    assert len(got) == len(best)
    assert all(close(s, b) for (_, s), b in zip(got, best, strict=True)), (got, best)
    assert all(close(score, ref[category]) for category, score in got), (got, ref)


def replay(
    events: Iterable[Event],
    check: Callable[[UserState, list[Event]], None],
    when: Callable[[int], bool] = lambda n: True,
) -> dict[str, tuple[UserState, list[Event]]]:
    """Stream events into one UserState per user; check after chosen events and at each end."""
    users: dict[str, tuple[UserState, list[Event]]] = {}
    for e in events:
        state, seen = users.setdefault(e.user_id, (UserState(), []))
        state.update(e)
        seen.append(e)
        if when(len(seen)):
            check(state, seen)
    for state, seen in users.values():
        check(state, seen)
    return users


# ---------------------------------------------------------------- (a) MovieLens


def movielens_events(data_dir: Path, rows: int = 20_000) -> list[Event]:
    base = data_dir / "movielens-latest-small"
    with (base / "movies.csv").open(newline="", encoding="utf-8") as f:
        genres = {r["movieId"]: tuple(r["genres"].split("|")) for r in csv.DictReader(f)}
    with (base / "ratings.csv").open(newline="", encoding="utf-8") as f:
        ratings = list(csv.DictReader(f))
    ratings.sort(key=lambda r: (int(r["timestamp"]), int(r["userId"]), int(r["movieId"])))
    return [
        Event(
            event_id=f"ml-{i}",
            user_id=r["userId"],
            type="product_view",
            ts=float(r["timestamp"]),
            item_id=r["movieId"],
            category=genres[r["movieId"]],
        )
        for i, r in enumerate(ratings[:rows])
    ]


def test_movielens_sessions_and_windows_match_batch(data_dir: Path) -> None:
    events = movielens_events(data_dir)
    seen_values: dict[str, set[float]] = defaultdict(set)

    def check(state: UserState, seen: list[Event]) -> None:
        got, want = state.features(), ref_sessions(seen) | ref_windows(seen)
        assert_features(got, want, f"user {seen[-1].user_id} after {len(seen)}")
        assert state.version == len(seen)
        for name in ("session_count", "bounce_rate", "views_1h", "views_7d"):
            seen_values[name].add(got[name])

    # heavy raters: every event for the first 100, then every 25th (the batch side is O(n))
    users = replay(events, check, when=lambda n: n <= 100 or n % 25 == 0)
    assert len(users) > 100
    state, seen = users["414"]  # the heaviest rater of the slice: also check interests/history
    assert_top(state.top_interests(), ref_interest_scores(seen), 5)
    assert state.history == ref_recent_items(seen, INTERACTIONS, 20)
    # the data exercised what it should: many sessions, bounces and partial windows
    assert max(seen_values["session_count"]) >= 10
    assert len(seen_values["bounce_rate"]) > 10
    assert len(seen_values["views_1h"]) > 10
    assert seen_values["views_1h"] != seen_values["views_7d"]


# ---------------------------------------------------------------- (b) CDNOW


def cdnow_events(data_dir: Path, last_customer: str = "05000") -> list[Event]:
    with (data_dir / "cdnow" / "cdnow_master.csv").open(newline="", encoding="utf-8") as f:
        rows = [
            (i, r) for i, r in enumerate(csv.DictReader(f)) if r["customer_id"] <= last_customer
        ]
    events = [
        Event(
            event_id=f"cdnow-{i}",
            user_id=r["customer_id"],
            type="purchase",
            ts=datetime.strptime(r["date"], "%Y%m%d").replace(tzinfo=UTC).timestamp(),
            price=float(r["dollar_value"]),
            quantity=1,
        )
        for i, r in rows
    ]
    events.sort(key=lambda e: (e.ts, e.user_id, int(e.event_id[6:])))
    return events


def test_cdnow_rfm_matches_batch(data_dir: Path) -> None:
    events = cdnow_events(data_dir)
    rfm_names = ("recency_days", "purchases_30d", "spend_30d", "purchases_total", "spend_total")

    def check(state: UserState, seen: list[Event]) -> None:
        got = state.features()
        assert_features(got, ref_rfm(seen), f"customer {seen[-1].user_id} after {len(seen)}")

    users = replay(events, check)
    assert len(users) > 4000
    # observation end (the day after the last recorded purchase): recency becomes informative
    end = datetime(1998, 7, 1, tzinfo=UTC).timestamp()
    recencies, windowed = set(), 0
    for user, (state, seen) in users.items():
        marker = Event(event_id=f"end-{user}", user_id=user, type="page_view", ts=end)
        state.update(marker)
        seen.append(marker)
        got = state.features()
        assert_features(got, ref_rfm(seen), f"customer {user} at end")
        recencies.add(got["recency_days"])
        windowed += got["purchases_30d"] > 0
        assert {n: got[n] for n in rfm_names}.keys() == set(rfm_names)
    assert 365.0 in recencies and min(recencies) < 30.0
    assert windowed > 0


# ---------------------------------------------------------------- (c) generated mixed stream

TYPES = [
    "page_view",
    "product_view",
    "click",
    "add_to_cart",
    "remove_from_cart",
    "purchase",
    "scroll",
    "search",
]
TYPE_WEIGHTS = [20, 30, 15, 8, 3, 8, 10, 6]
CATEGORIES = [f"cat{i}" for i in range(12)]
DEVICES = ["desktop", "mobile", "tablet", None]
REFERRERS = [None, None, "google", "email", "ads", "https://www.instagram.com/p/1", "shop.example"]
ZONES = [None, "Europe/Paris", "America/New_York", "+05:30", "-03:00"]


def _gap(rng: random.Random) -> float:
    kind = rng.random()
    if kind < 0.05:
        return 0.0  # same-second events
    if kind < 0.6:
        return rng.uniform(0, 300)
    if kind < 0.8:
        return rng.uniform(300, 2400)  # around the session gap
    if kind < 0.95:
        return rng.uniform(3600, 12 * 3600)
    return rng.uniform(DAY, 6 * DAY)


def generated_events(n: int = 2000, users: int = 8, seed: int = 7) -> list[Event]:
    rng = random.Random(seed)
    clocks = {f"g{u}": 1.7e9 + rng.uniform(0, 3600) for u in range(users)}
    out = []
    for i in range(n):
        user = rng.choice(sorted(clocks))
        clocks[user] += _gap(rng)
        etype = rng.choices(TYPES, TYPE_WEIGHTS)[0]
        has_item = etype not in ("page_view", "scroll", "search") and rng.random() < 0.95
        priced = etype in ("product_view", "add_to_cart", "purchase")
        out.append(
            Event(
                event_id=f"gen-{i}",
                user_id=user,
                type=etype,
                ts=clocks[user],
                item_id=f"i{rng.randrange(60)}" if has_item else None,
                category=tuple(rng.sample(CATEGORIES, rng.randint(0, 3))),
                price=round(rng.uniform(1, 300), 2) if priced else None,
                quantity=rng.randint(1, 3) if etype == "purchase" else 1,
                device=rng.choice(DEVICES),
                referrer=rng.choice(REFERRERS),
                tz=rng.choice(ZONES),
            )
        )
    return out


def check_everything(state: UserState, seen: list[Event]) -> None:
    where = f"user {seen[-1].user_id} after {len(seen)}"
    assert_features(state.features(), ref_features(seen), where)
    assert state.version == len(seen)
    assert state.watermark == max(e.ts for e in seen)
    assert_top(state.top_interests(), ref_interest_scores(seen), 5)
    assert state.history == ref_recent_items(seen, INTERACTIONS, 20)
    assert state.purchased == frozenset(ref_recent_items(seen, {"purchase"}, 200))
    assert state.device == ref_latest(seen, "device")
    assert state.referrer == ref_latest(seen, "referrer")


def test_generated_stream_all_features_match_batch_after_every_event() -> None:
    events = generated_events()
    users = replay(events, check_everything)
    finals = [state.features() for state, _ in users.values()]
    assert len(finals) == 8
    assert all(f["session_count"] > 10 and f["purchases_total"] > 5 for f in finals)
    assert any(0 < f["bounce_rate"] < 1 for f in finals)
    assert any(f["purchases_30d"] < f["purchases_total"] for f in finals)


def test_generated_stream_out_of_order_within_lateness() -> None:
    """Order-free features must not care about arrival order (events up to 300 s late)."""
    rng = random.Random(11)
    events = generated_events()
    arrival = sorted(events, key=lambda e: e.ts + rng.uniform(0, 300))
    assert arrival != events

    def check(state: UserState, seen: list[Event]) -> None:
        got, want = state.features(), ref_windows(seen) | ref_rfm(seen)
        assert_features(got, want, f"user {seen[-1].user_id} after {len(seen)}")
        assert_top(state.top_interests(), ref_interest_scores(seen), 5)
        assert state.purchased == frozenset(
            e.item_id for e in seen if e.type == "purchase" and e.item_id
        )
        assert state.device == ref_latest(seen, "device")

    users = replay(arrival, check)
    late = sum(
        any(e.ts < prev.ts for prev in seen[:i])
        for _, seen in users.values()
        for i, e in enumerate(seen)
    )
    assert late > 50
