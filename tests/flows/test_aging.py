"""Segments that age, through the real worker: customers who stop buying end up lapsed.

A profile, its RFM tier and its segment are re-evaluated as the stream's event-time clock
crosses each aging boundary (`tailor.operators.aging`), so a customer's stored recency keeps growing
after their last purchase and their tier follows, while their recommendations stay as their
last event left them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import redis

from tailor.flows.produce import produce
from tests.conftest import drain_worker

DAY = 86400.0
START = 1_700_006_400.0  # a UTC midnight
PARTITIONS = 2


def write_events(path: Path) -> None:
    """Twenty regulars buy every few days for 200 days; `gone` buys twice on day 1 and never
    comes back; `late` buys only on the last day."""
    lines = []
    for day in range(200):
        for n in range(20):
            if (day + n) % 4 == 0:
                ts = START + day * DAY + 3600 + n
                event = {"event_id": f"r{n}-{day}", "user_id": f"regular-{n:02d}", "ts": ts}
                lines.append(event | {"type": "purchase", "item_id": f"i{n % 7}", "price": 20.0})
    lines += [
        {
            "event_id": f"g{k}",
            "user_id": "gone",
            "type": "purchase",
            "item_id": "i1",
            "price": 500.0,
            "ts": START + DAY + 7200 + k,
        }
        for k in range(2)
    ]
    lines.append(
        {
            "event_id": "l0",
            "user_id": "late",
            "type": "purchase",
            "item_id": "i2",
            "price": 20.0,
            "ts": START + 199 * DAY + 7200,
        }
    )
    lines.sort(key=lambda e: (e["ts"], e["event_id"]))
    path.write_bytes(b"\n".join(orjson.dumps(e) for e in lines) + b"\n")


def run(redis_url: str, path: Path, prefix: str, **settings: Any) -> None:
    produce(redis_url, path, prefix=prefix, partitions=PARTITIONS, adapter="jsonl", progress=False)
    drain_worker(redis_url, prefix, PARTITIONS, segments__warmup=10, **settings)


def profile(r: redis.Redis, prefix: str, user: str) -> dict[str, Any]:
    raw = r.hgetall(f"{prefix}:user:{user}")
    return {k.decode(): orjson.loads(v) for k, v in raw.items()}


def test_a_customer_who_never_returns_is_aged_into_a_lapsed_tier(
    redis_url: str, r: redis.Redis, tmp_path: Path
) -> None:
    events = tmp_path / "events.jsonl"
    write_events(events)
    run(redis_url, events, "aged")
    run(redis_url, events, "frozen", state__age_every_s=0.0)

    frozen = profile(r, "frozen", "gone")
    assert frozen["features"]["recency_days"] == 0.0 and "aged_to" not in frozen
    assert frozen["rfm_segment"] not in ("lost", "hibernating", "at_risk", "cant_lose")

    gone = profile(r, "aged", "gone")
    # aged to a midnight the clock crossed (written there because its segments changed)
    at = gone["aged_to"]
    assert (at - START) % DAY == 0 and START + 100 * DAY <= at <= START + 199 * DAY
    assert gone["version"] == frozen["version"] == 2  # no event was invented
    assert gone["last_event_ts"] == frozen["last_event_ts"]
    assert gone["features"]["recency_days"] == (at - START - DAY - 7201) / DAY
    assert gone["features"]["purchases_30d"] == 0.0 and gone["features"]["spend_30d"] == 0.0
    assert gone["features"]["purchases_total"] == 2.0  # lifetime values stay
    assert gone["rfm_segment"] == "lost"  # two purchases, no more spend than a regular, long gone
    members = {m.decode() for m in r.smembers("aged:segment:rfm:lost")}
    assert "gone" in members
    # its list is the one its last event drafted
    assert r.get("aged:recs:gone") == r.get("frozen:recs:gone")

    late = profile(r, "aged", "late")  # bought after the last boundary: nothing to age
    assert "aged_to" not in late and late["features"]["recency_days"] == 0.0

    notices = [orjson.loads(f[b"notice"]) for _, f in r.xrange("aged:updates")]
    aged_notices = [n for n in notices if n["user_id"] == "gone" and "aged_to" in n]
    assert aged_notices and all(n["version"] == 2 for n in aged_notices)
    boundaries = [n["aged_to"] for n in aged_notices]
    assert boundaries == sorted(boundaries)  # announced in the order the clock moved


def test_aging_replays_to_the_same_stored_profiles(
    redis_url: str, r: redis.Redis, tmp_path: Path
) -> None:
    """Determinism: two replays (other batch sizes) leave every profile byte for byte equal."""
    events = tmp_path / "events.jsonl"
    write_events(events)
    run(redis_url, events, "one")
    run(redis_url, events, "two", source__batch_size=37)
    for user in ("gone", "late", "regular-00", "regular-07"):
        assert r.hgetall(f"one:user:{user}") == r.hgetall(f"two:user:{user}"), user
