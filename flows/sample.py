"""The bundled sample: a seeded, shop-like clickstream for `tailor demo`.

Generated rather than shipped as a file: the same seed gives the same events byte for
byte, and nothing generated sits in git. It is shaped so every feature has something to
show: users with favourite categories and a preferred device, sessions separated by long
gaps, a view → cart → purchase funnel, and items bought together within a category.

>>> events = list(generate(users=5, seed=1))
>>> events == list(generate(users=5, seed=1)), events[0]["type"]
(True, 'page_view')
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

CATEGORIES = ("books", "electronics", "fashion", "home", "sports", "toys", "beauty", "garden")
DEVICES = (("mobile", 0.55), ("desktop", 0.35), ("tablet", 0.10))
REFERRERS = ("search", "social", "email", "direct", "ads")
START_TS = 1_767_225_600  # 2026-01-01T00:00:00Z: fixed, so the sample never depends on today
DAYS = 14
ITEMS_PER_CATEGORY = 50


def _catalogue(rng: random.Random) -> list[tuple[str, str, float]]:
    items = []
    for c_index, category in enumerate(CATEGORIES):
        for i in range(ITEMS_PER_CATEGORY):
            price = round(rng.lognormvariate(3.0 + 0.2 * c_index, 0.6), 2)
            items.append((f"{category[:3]}-{i:03d}", category, price))
    return items


def _pick_device(rng: random.Random) -> str:
    roll, acc = rng.random(), 0.0
    for device, share in DEVICES:
        acc += share
        if roll < acc:
            return device
    return DEVICES[-1][0]


def _session(
    rng: random.Random, user: dict[str, Any], start: float, by_category: dict[str, list[Any]]
) -> Iterator[dict[str, Any]]:
    """One visit: land, browse mostly the favourite category, sometimes cart and buy."""
    ts = start
    base = {"user_id": user["id"], "device": user["device"], "referrer": rng.choice(REFERRERS)}
    yield {**base, "type": "page_view", "ts": ts}
    category = rng.choice(user["favourites"]) if rng.random() < 0.8 else rng.choice(CATEGORIES)
    shelf = by_category[category]
    for _ in range(1 + int(rng.expovariate(1 / (2 + 6 * user["engagement"])))):
        ts += rng.uniform(10, 120)
        item_id, cat, price = shelf[min(int(rng.paretovariate(1.2)) - 1, len(shelf) - 1)]
        view = {"item_id": item_id, "category": cat, "price": price}
        yield {**base, "type": "product_view", "ts": ts, **view}
        if rng.random() < 0.05:
            yield {**base, "type": "scroll", "ts": ts + 5}
        if rng.random() < 0.12 * (1 + user["buyer"]):
            ts += rng.uniform(5, 60)
            yield {**base, "type": "add_to_cart", "ts": ts, **view}
            if rng.random() < 0.35 + 0.4 * user["buyer"]:
                ts += rng.uniform(30, 300)
                yield {**base, "type": "purchase", "ts": ts, **view, "quantity": 1}


#: Distinct kinds of shopper for `generate(archetypes=True)`: (device, engagement, buyer,
#: mean sessions). With them the sample has a known segment structure (tests of segments).
ARCHETYPES: tuple[tuple[str, float, float, float], ...] = (
    ("mobile", 0.0, 0.0, 1.0),  # bouncing mobile visitor
    ("desktop", 1.0, 0.05, 6.0),  # researching desktop browser
    ("mobile", 0.5, 1.0, 8.0),  # loyal buyer
    ("tablet", 0.2, 0.3, 2.0),  # casual tablet shopper
)


def _user(rng: random.Random, n: int, archetypes: bool) -> dict[str, Any]:
    """A shopper: random traits, or (with `archetypes`) one of `ARCHETYPES`, label included."""
    if archetypes:
        label = rng.randrange(len(ARCHETYPES))
        device, engagement, buyer, sessions = ARCHETYPES[label]
        favourites = rng.sample(CATEGORIES, k=rng.choice((1, 2)))
        traits = {"archetype": label, "engagement": engagement, "buyer": buyer}
        return {
            "id": f"user-{n:05d}",
            "device": device,
            "favourites": favourites,
            "sessions": sessions,
            **traits,
        }
    return {  # the draw order of the original sample: the same seed, the same bytes
        "id": f"user-{n:05d}",
        "device": _pick_device(rng),
        "favourites": rng.sample(CATEGORIES, k=rng.choice((1, 2))),
        "engagement": rng.random(),
        "buyer": rng.random() ** 2,
        "sessions": 3.0,
    }


def generate(
    users: int = 1500, seed: int = 7, archetypes: bool = False
) -> Iterator[dict[str, Any]]:
    """Canonical event dicts in event-time order, with stable event ids."""
    rng = random.Random(seed)
    catalogue = _catalogue(rng)
    by_category: dict[str, list[Any]] = {c: [] for c in CATEGORIES}
    for item in catalogue:
        by_category[item[1]].append(item)
    events: list[dict[str, Any]] = []
    for n in range(users):
        user = _user(rng, n, archetypes)
        sessions = 1 + int(rng.expovariate(1 / user["sessions"])) if user["sessions"] > 1 else 1
        for _ in range(sessions):
            start = START_TS + rng.uniform(0, DAYS * 86400)
            events.extend(_session(rng, user, start, by_category))
    events.sort(key=lambda e: (e["ts"], e["user_id"]))
    for number, event in enumerate(events):
        event["ts"] = round(event["ts"], 3)
        yield {"event_id": f"sample-{number:07d}", **event}


def write_jsonl(path: Path, users: int = 1500, seed: int = 7, archetypes: bool = False) -> int:
    """Write the sample as JSONL (what `tailor produce` reads); returns the event count."""
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("wb") as handle:
        for event in generate(users, seed, archetypes):
            handle.write(orjson.dumps(event) + b"\n")
            count += 1
    return count
