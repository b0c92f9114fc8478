"""The published lists for users without history, through the real worker and Redis: each list
holds what the events say, computed here independently (weighted counts, decayed in event time,
per category), with versions that only grow; a block empties them of the item; a replay writes
the same bytes; two workers publish the lists one worker does.

The events: eight shoppers one after another (each user's events are consecutive and time
only moves forward, so the models learn them in file order however the worker batches them,
and a list's version, its place in that order, can be counted here).
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis

from tailor.flows.block import block
from tailor.flows.produce import produce
from tailor.flows.sample import write_jsonl
from tailor.operators.redis.keys import fallback_key, fallbacks_key, segments_key
from tests.conftest import drain_worker

T0 = 1_700_000_000
HALFLIFE_S = 86400.0  # recs.trending_halflife_s
WEIGHTS = {"add_to_cart": 2, "purchase": 3}  # [recs.event_weights]; other types count 1
LENGTH = 4  # recs.fallback_length in these runs: shorter than the catalogue
#: Item → categories, as every event of the item gives them.
CATALOGUE: dict[str, tuple[str, ...]] = {
    "boot": ("shoes",),
    "sandal": ("shoes", "summer"),
    "cap": ("hats",),
    "beanie": ("hats", "winter"),
    "scarf": ("winter",),
    "tee": ("summer",),
    "sock": (),
}
#: Per shopper, their events in order: v(iew), c(art: add to cart) or p(urchase) of an item.
#: Boots and caps early, sandals and tees late.
SHOPPERS = [
    "v:boot c:boot p:boot v:cap",
    "v:boot v:cap c:cap p:boot",
    "v:scarf v:boot c:beanie v:sock",
    "v:cap p:cap v:boot v:scarf",
    "v:sandal c:sandal v:tee v:sock",
    "v:tee p:tee v:sandal p:beanie",
    "v:sandal p:sandal v:boot v:tee",
    "c:tee v:sandal c:sandal v:sock",
]
TYPES = {"v": "product_view", "c": "add_to_cart", "p": "purchase"}


def events(shoppers: range = range(len(SHOPPERS))) -> list[dict[str, Any]]:
    """The shoppers' events in file order, an hour apart."""
    return [
        {
            "event_id": f"e{user}-{step}",
            "user_id": f"shopper-{user}",
            "type": TYPES[kind],
            "ts": T0 + 3600 * (4 * user + step),
            "item_id": item,
            "category": list(CATALOGUE[item]),
        }
        for user in shoppers
        for step, (kind, item) in enumerate(e.split(":") for e in SHOPPERS[user].split())
    ]


# ------------------------------------------------------------------ expected, from the events


def ranked(scores: dict[str, float], blocked: str | None) -> list[tuple[str, float]]:
    """Best first, ties by id, the first LENGTH, the blocked item left out."""
    kept = [(item, score) for item, score in scores.items() if item != blocked]
    return sorted(kept, key=lambda pair: (-pair[1], pair[0]))[:LENGTH]


def expected(evs: list[dict[str, Any]], decay: bool, blocked: str | None) -> dict[str, Any]:
    """The list over `evs`: weighted counts, each halved per half-life before the newest event
    when `decay` (trending), with that event time; version = how many events were learned
    when the last of them came (every event here has an item: its 1-based place). A blocked
    item still counts (the models learn it), it is only never listed."""
    now = max(e["ts"] for e in evs)
    scores: dict[str, float] = defaultdict(float)
    for e in evs:
        factor = 2.0 ** ((e["ts"] - now) / HALFLIFE_S) if decay else 1.0
        scores[e["item_id"]] += WEIGHTS.get(e["type"], 1) * factor
    return {"at": float(now), "items": ranked(scores, blocked), "version": evs[-1]["place"]}


def expected_lists(evs: list[dict[str, Any]], blocked: str | None = None) -> dict[str, Any]:
    """Every list's expected value, by name."""
    evs = [{**e, "place": n} for n, e in enumerate(evs, start=1)]
    lists = {
        "popular": expected(evs, decay=False, blocked=blocked),
        "trending": expected(evs, decay=True, blocked=blocked),
    }
    for category in sorted({c for cats in CATALOGUE.values() for c in cats}):
        inside = [e for e in evs if category in e["category"]]
        if inside:
            lists[f"category:{category}"] = expected(inside, decay=True, blocked=blocked)
    return lists


# ------------------------------------------------------------------ Redis


def stored_lists(r: redis.Redis, prefix: str) -> dict[str, bytes]:
    """Every published list's stored bytes, by the names the hash lists."""
    names = sorted(n.decode() for n in r.hgetall(fallbacks_key(prefix)))
    return {name: r.get(fallback_key(prefix, name)) or b"" for name in names}


def decoded(r: redis.Redis, prefix: str) -> dict[str, Any]:
    out = {}
    for name, raw in stored_lists(r, prefix).items():
        value = orjson.loads(raw)
        assert raw == orjson.dumps(value, option=orjson.OPT_SORT_KEYS)  # canonical bytes
        assert int(r.hget(fallbacks_key(prefix), name) or 0) == value["version"]
        value["items"] = [(i["item_id"], i["score"]) for i in value["items"]]
        out[name] = value
    return out


def same_lists(got: dict[str, Any], want: dict[str, Any], versions: bool = True) -> None:
    """Names, (`versions`,) event times and item order exactly; scores to their six decimals."""
    assert sorted(got) == sorted(want)
    for name, value in want.items():
        found = got[name]
        assert found["at"] == value["at"], name
        assert not versions or found["version"] == value["version"], name
        assert [i for i, _ in found["items"]] == [i for i, _ in value["items"]], name
        for (_, score), (_, wanted) in zip(found["items"], value["items"], strict=True):
            assert math.isclose(score, wanted, abs_tol=2e-6), name


def run(
    redis_url: str, tmp_path: Path, prefix: str, evs: list[dict[str, Any]], **settings: Any
) -> None:
    """Publish `evs` to the prefix's one partition and drain a worker over all it holds."""
    path = tmp_path / f"{prefix}-{len(evs)}.jsonl"
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in evs))
    produce(redis_url, path, prefix=prefix, partitions=1, adapter="jsonl", progress=False)
    drain_worker(redis_url, prefix, 1, recs__fallback_length=LENGTH, **settings)


def test_each_list_holds_what_the_events_say(
    redis_url: str, r: redis.Redis, tmp_path: Path
) -> None:
    evs = events()
    run(redis_url, tmp_path, "shop", evs)
    got = decoded(r, "shop")
    same_lists(got, expected_lists(evs))
    # decay matters: the early hit is the most popular ever, but no longer trending first
    assert got["popular"]["items"][0][0] == "boot"
    assert got["trending"]["items"][0][0] == "sandal"
    assert [name for name in got if name.startswith("category:")] == [
        "category:hats", "category:shoes", "category:summer", "category:winter"
    ]  # fmt: skip


def test_versions_only_grow_and_a_replay_never_moves_a_list_back(
    redis_url: str, r: redis.Redis, tmp_path: Path
) -> None:
    """Half the shoppers, then the rest: the second worker re-reads the stream from the start
    (no recovery store), so it republishes the first half's lists, older, first."""
    first = events(range(4))
    run(redis_url, tmp_path, "grow", first)
    before = decoded(r, "grow")
    same_lists(before, expected_lists(first))
    assert "category:summer" not in before  # no summer item before the fifth shopper
    run(redis_url, tmp_path, "grow", events(range(4, 8)))
    after = decoded(r, "grow")
    same_lists(after, expected_lists(events()))
    for name, value in before.items():
        assert after[name]["version"] >= value["version"], name
    assert after["popular"]["version"] > before["popular"]["version"]
    assert after["category:hats"]["version"] > before["category:hats"]["version"]


def test_a_blocked_item_leaves_every_list(redis_url: str, r: redis.Redis, tmp_path: Path) -> None:
    evs = events()
    run(redis_url, tmp_path, "blk", evs)
    before = decoded(r, "blk")
    holding = [name for name, value in before.items() if "sandal" in dict(value["items"])]
    assert {"popular", "trending", "category:shoes", "category:summer"} <= set(holding)

    assert block(r, "blk", "sandal") >= len(holding)  # the stored lists, rewritten at once
    at_once = decoded(r, "blk")
    for name in before:
        assert "sandal" not in dict(at_once[name]["items"]), name
        assert at_once[name]["version"] == before[name]["version"]  # as stored, item aside

    # a fresh worker replays the stream and hears of the block somewhere along it: one more
    # place in the learning order, which every list takes, or its last event after it
    drain_worker(redis_url, "blk", 1, recs__fallback_length=LENGTH)
    later = decoded(r, "blk")
    same_lists(later, expected_lists(evs, blocked="sandal"), versions=False)
    assert later["popular"]["version"] == later["trending"]["version"] == len(evs) + 1
    assert all(later[name]["version"] > before[name]["version"] for name in before)


def test_the_same_replay_writes_the_same_bytes(
    redis_url: str, r: redis.Redis, tmp_path: Path
) -> None:
    evs = events()
    run(redis_url, tmp_path, "one", evs)
    run(redis_url, tmp_path, "two", evs, source__batch_size=3)  # other batches, same order
    assert stored_lists(r, "one") == stored_lists(r, "two")
    assert r.hgetall(fallbacks_key("one")) == r.hgetall(fallbacks_key("two"))
    # nothing in them is about a user: an erasure has nothing to take from them
    assert b"shopper" not in b"".join(stored_lists(r, "one").values())


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    path = tmp_path / "sample.jsonl"
    write_jsonl(path, users=400, seed=3, archetypes=True)
    return path


def run_workers(redis_url: str, sample: Path, prefix: str, workers: int) -> None:
    produce(redis_url, sample, prefix=prefix, partitions=4, adapter="jsonl", progress=False)
    drain_worker(redis_url, prefix, 4, cluster__workers_per_process=workers)


def test_two_workers_publish_the_lists_one_worker_does(
    redis_url: str, r: redis.Redis, sample: Path
) -> None:
    """One replica writes every list. Popular and trending are the same lists, versions
    included (every event learned, whatever the order); a category's list the same items
    (its version, the place of its last event in the learning order, follows arrival); a
    segment's list exists for every cluster segment (which segment an event counted in follows
    arrival too: README, Scale)."""
    run_workers(redis_url, sample, "w1", 1)
    run_workers(redis_url, sample, "w2", 2)
    one, two = decoded(r, "w1"), decoded(r, "w2")
    assert sorted(one) == sorted(two)
    for name in ("popular", "trending"):
        assert (one[name]["version"], one[name]["at"]) == (two[name]["version"], two[name]["at"])
    for name, value in one.items():
        if name.startswith("segment:"):
            continue
        assert [i for i, _ in two[name]["items"]] == [i for i, _ in value["items"]], name
        assert two[name]["at"] == value["at"], name
        for (_, a), (_, b) in zip(two[name]["items"], value["items"], strict=True):
            assert math.isclose(a, b, abs_tol=2e-6), name
    segments = {f"segment:{k.decode()}" for k in r.hgetall(segments_key("w1"))}
    listed = {name for name in one if name.startswith("segment:")}
    assert listed and listed <= segments
    for value in one.values():
        scores = [score for _, score in value["items"]]
        assert scores == sorted(scores, reverse=True) and all(s > 0 for s in scores)
