"""Hostile input through the whole worker: it stays up, refuses each bad payload with a
reason on the dead-letter stream, processes each good one, and loses nothing."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import orjson
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tailor.operators.redis.keys import deadletter_stream, stream_key, user_key
from tailor.operators.redis.routing import partition_for
from tailor.state.profile.event import REASONS
from tests.conftest import drain_worker
from tests.flows.deadletter_support import as_lettered, held

PREFIX = "hostile"
PARTITIONS = 2
BASE_TS = 1_700_000_000

not_utf8 = st.binary(min_size=1, max_size=40).map(lambda b: b"\xff\xfe" + b)
not_json = (
    st.text(min_size=1, max_size=40)
    .filter(lambda t: t.strip()[:1] not in '[{"-0123456789tfn')
    .map(str.encode)
)
not_object = st.one_of(
    st.integers(-(2**63), 2**63 - 1), st.lists(st.integers(0, 99), max_size=3), st.text(max_size=10)
).map(orjson.dumps)
deep = st.integers(min_value=300, max_value=20_000).map(lambda n: b"[" * n + b"]" * n)
huge = st.integers(min_value=70_000, max_value=200_000).map(
    lambda n: orjson.dumps(
        {"event_id": "x", "user_id": "u", "type": "click", "ts": BASE_TS, "pad": "a" * n}
    )
)
specials = st.sampled_from(
    [
        b'{"event_id": "e", "user_id": "u", "type": "click", "ts": NaN}',
        b'{"event_id": "e", "user_id": "u", "type": "click", "ts": Infinity}',
        b'{"event_id": "e", "user_id": "u", "type": "click", "ts": 1e400}',
        b'{"event_id": "e", "user_id": "u", "type": "click", "ts": 99999999999999999999999}',
        b'{"event_id": "e", "user_id": "u", "type": "click", "ts": 4102444800000}',
        b'{"event_id": "e", "user_id": "u", "type": "click", "ts": 5}',
        b'{"event_id": "e", "user_id": "u\\u0000x", "type": "click", "ts": 1700000000}',
        b'{"event_id": "e", "user_id": ["u"], "type": "click", "ts": 1700000000}',
        b'{"event_id": "e", "user_id": "u", "type": "teleport", "ts": 1700000000}',
        b'{"event_id": "e", "user_id": "u", "type": "click"}',
        b'{"event_id": "e", "user_id": "u", "type": "click", "ts": "yesterday"}',
        b'{"event_id": "e", "user_id": "u", "type": "purchase", "ts": 1700000000, "price": -1}',
        b'{"event_id": "e", "user_id": "u", "type": "click", "ts": 1700000000, "quantity": 1e308}',
        b"",
        b"\x00\x01\x02",
    ]
)
wrong_fields = st.fixed_dictionaries(
    {
        "event_id": st.one_of(st.none(), st.booleans(), st.floats(), st.lists(st.integers(0, 9))),
        "user_id": st.text(min_size=1, max_size=5),
        "type": st.just("click"),
        "ts": st.just(BASE_TS),
    }
).map(orjson.dumps)
bad_payloads = st.one_of(not_utf8, not_json, not_object, deep, huge, specials, wrong_fields)


def good_event(n: int) -> bytes:
    return orjson.dumps(
        {
            "event_id": f"good-{n}",
            "user_id": f"user-{n}",
            "type": "product_view",
            "ts": BASE_TS + n,
            "item_id": f"item-{n % 7}",
            "category": "books",
        }
    )


def publish(client: redis.Redis, bad: list[bytes], good: list[bytes]) -> None:
    """Bad payloads and good events interleaved; bad ones go to partition 0 (no usable user)."""
    pipe = client.pipeline(transaction=False)
    for i in range(max(len(bad), len(good))):
        if i < len(bad):
            pipe.xadd(stream_key(PREFIX, 0), {b"payload": bad[i]})
        if i < len(good):
            user = orjson.loads(good[i])["user_id"]
            pipe.xadd(stream_key(PREFIX, partition_for(user, PARTITIONS)), {b"payload": good[i]})
    pipe.execute()


def run_worker(redis_url: str) -> None:
    drain_worker(redis_url, PREFIX, PARTITIONS)


def dead_letters(client: redis.Redis) -> list[dict[bytes, Any]]:
    return [fields for _id, fields in client.xrange(deadletter_stream(PREFIX))]


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(bad=st.lists(bad_payloads, min_size=1, max_size=12), n_good=st.integers(0, 15))
def test_hostile_payloads_are_dead_lettered_and_good_ones_processed(
    redis_url: str, bad: list[bytes], n_good: int
) -> None:
    client = redis.Redis.from_url(redis_url)
    client.flushall()
    good = [good_event(n) for n in range(n_good)]
    publish(client, bad, good)
    run_worker(redis_url)
    letters = dead_letters(client)
    assert Counter(held(f) for f in letters) == Counter(as_lettered(b) for b in bad)
    assert all(f[b"reason"].decode() in REASONS for f in letters)
    for n in range(n_good):
        assert client.hget(user_key(PREFIX, f"user-{n}"), "version") == b"1"


def test_each_reason_is_reported(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    cases = {
        b"\xff\xfe": "not_utf8",
        b"{oops": "malformed_json",
        b"[1, 2]": "not_object",
        b'{"user_id": "u", "type": "click", "ts": 1700000000}': "missing_field",
        b'{"event_id": 1.5, "user_id": "u", "type": "click", "ts": 1700000000}': "wrong_type",
        b'{"event_id": "e", "user_id": "u", "type": "teleport", "ts": 1700000000}': "unknown_type",
        b'{"event_id": "e", "user_id": "u", "type": "click", "ts": 4102444800}': "ts_future",
        b'{"event_id": "e", "user_id": "u", "type": "click", "ts": 5}': "ts_past",
        b'{"event_id": "e", "pad": "' + b"a" * 70_000 + b'"}': "too_large",
        b'{"event_id": "e", "user_id": "'
        + b"u" * 10_000
        + b'", "type": "click", "ts": 1700000000}': ("too_long"),
        b'{"event_id": "e", "user_id": "u", "type": "purchase", "ts": 1700000000, "price": -1}': (
            "out_of_range"
        ),
        b'{"event_id": "e", "user_id": "u", "type": "purchase", "ts": 1700000000, "quantity": 0}': (
            "out_of_range"
        ),
    }
    publish(client, list(cases), [])
    run_worker(redis_url)
    got = {f[b"payload"]: f[b"reason"].decode() for f in dead_letters(client)}
    assert got == {as_lettered(payload)[0]: reason for payload, reason in cases.items()}


def test_every_entry_big_or_small_is_kept_or_dead_lettered_in_order(redis_url: str) -> None:
    """One user's events, some padded past the limit, through byte-bounded batches: each is
    accepted or dead-lettered (cut, with its size and hash), none lost, none out of order.

    The events are 1,000 s apart, more than `state.allowed_lateness_s`: an event delivered
    after a later one would be dead-lettered as late.
    """
    client = redis.Redis.from_url(redis_url)
    key = stream_key(PREFIX, partition_for("steady", PARTITIONS))
    rng = random.Random(5)
    accepted, refused = 0, []
    for n in range(60):
        pad = rng.choice([0, 0, 0, 30_000, 60_000, 70_000, 300_000, 2_000_000])
        body = {"event_id": f"s{n}", "user_id": "steady", "type": "click", "ts": BASE_TS + 1000 * n}
        payload = orjson.dumps({**body, "pad": "p" * pad})
        entry_id = client.xadd(key, {b"payload": payload})
        if len(payload) > 65536:
            refused.append((entry_id, payload))
        else:
            accepted += 1
    drain_worker(redis_url, PREFIX, PARTITIONS, source__batch_max_bytes=100_000)
    letters = dead_letters(client)
    assert [(f[b"offset"], f[b"reason"]) for f in letters] == [
        (entry_id, b"too_large") for entry_id, _ in refused
    ]
    assert [held(f) for f in letters] == [as_lettered(payload) for _, payload in refused]
    assert all(len(held(f)[0]) == 1024 for f in letters)
    assert client.hget(user_key(PREFIX, "steady"), "version") == str(accepted).encode()
