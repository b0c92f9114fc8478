"""A few thousand seeded hostile payloads mixed with good events and their duplicates: the
worker stays up, every bad payload is on the dead-letter stream with a reason, and every good
event is counted exactly once (duplicates dropped)."""

from __future__ import annotations

import random
from collections import Counter

import orjson
import redis

from tailor.operators.redis.keys import deadletter_stream, stream_key, user_key
from tailor.operators.redis.routing import partition_for
from tailor.state.profile.event import REASONS
from tests.conftest import drain_worker
from tests.flows.deadletter_support import as_lettered, held

PREFIX = "scale"
PARTITIONS = 3
BASE_TS = 1_700_000_000


def hostile(rng: random.Random, n: int) -> bytes:
    """One of many kinds of broken payload, chosen and shaped by the seeded generator."""
    kind = n % 12
    depth = rng.randint(200, 5000)
    good = {"event_id": f"bad-{n}", "user_id": f"u{n % 50}", "type": "click", "ts": BASE_TS}
    if kind == 0:
        return b"[" * depth + b"]" * depth
    if kind == 1:
        return orjson.dumps({**good, "pad": "x" * rng.randint(70_000, 150_000)})
    if kind == 2:
        return orjson.dumps(good).replace(b'"click"', b'"cl\xffick"')
    if kind == 3:
        return orjson.dumps(good).replace(
            b"1700000000", rng.choice([b"NaN", b"Infinity", b"-1e999"])
        )
    if kind == 4:
        return orjson.dumps({**good, "user_id": "u\u0000" + chr(rng.randint(1, 31))})
    if kind == 5:
        return orjson.dumps(good).replace(b"1700000000", b"9" * rng.randint(20, 400))
    if kind == 6:
        return orjson.dumps({**good, "quantity": 7}).replace(b":7", b":" + str(2**70).encode())
    if kind == 7:
        return "é".encode("latin-1") * rng.randint(1, 20)
    if kind == 8:
        return bytes(rng.randrange(256) for _ in range(rng.randint(1, 64))) + b"\xc3\x28"
    if kind == 9:
        return orjson.dumps({**good, "type": rng.choice(["", "DROP TABLE", "page_view " * 3])})
    if kind == 10:
        return orjson.dumps([good])
    return orjson.dumps({**good, "ts": rng.choice([0, -5, 10**13, "2999-01-01T00:00:00Z"])})


def good_event(n: int) -> bytes:
    user = f"shopper-{n % 97}"
    return orjson.dumps(
        {
            "event_id": f"good-{n}",
            "user_id": user,
            "type": "product_view",
            "ts": BASE_TS + n,
            "item_id": f"item-{n % 31}",
            "category": "toys",
        }
    )


def test_thousands_of_hostile_payloads(redis_url: str, r: redis.Redis) -> None:
    rng = random.Random(1234)
    bad = [hostile(rng, n) for n in range(3000)]
    good = [good_event(n) for n in range(2000)]
    duplicates = [good[rng.randrange(len(good))] for _ in range(300)]
    pipe = r.pipeline(transaction=False)
    for payload in bad:
        pipe.xadd(stream_key(PREFIX, rng.randrange(PARTITIONS)), {"payload": payload})
    for payload in good + duplicates:  # duplicates after their originals, same partition
        user = orjson.loads(payload)["user_id"]
        pipe.xadd(stream_key(PREFIX, partition_for(user, PARTITIONS)), {"payload": payload})
    pipe.execute()

    drain_worker(redis_url, PREFIX, PARTITIONS)

    letters = [fields for _id, fields in r.xrange(deadletter_stream(PREFIX))]
    assert Counter(held(f) for f in letters) == Counter(as_lettered(b) for b in bad)
    reasons = Counter(f[b"reason"].decode() for f in letters)
    assert set(reasons) <= set(REASONS)
    assert len(reasons) >= 7  # the generator really exercises many refusal paths
    per_user = Counter(orjson.loads(p)["user_id"] for p in good)
    for user, count in per_user.items():
        assert r.hget(user_key(PREFIX, user), "version") == str(count).encode(), user
