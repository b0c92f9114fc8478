"""RedisSink when Redis fails: bounded and for-ever retries, give-up, recovery, redis_up."""

from __future__ import annotations

import random
import shutil
from collections.abc import Callable

import orjson
import pytest
import redis

from tailor.operators import lifecycle
from tailor.operators.metrics import REDIS_UP
from tailor.operators.redis.keys import (
    segment_key,
    updates_stream,
    user_key,
)
from tailor.operators.redis.retry import RetryPolicy
from tailor.operators.redis.sink import _RedisSinkPartition
from tests.conftest import RedisServer, free_port
from tests.operators.sink_support import (
    PREFIX,
    output,
    sample,
)


def test_gives_up_after_max_attempts_when_redis_is_gone(
    make_partition: Callable[..., _RedisSinkPartition],
) -> None:
    server = RedisServer()
    server.start()
    try:
        waits: list[float] = []
        part = make_partition(server.url, max_attempts=4, sleep=waits.append, backoff_cap_s=0.2)
        part.write_batch([output("u1", 1)])
        server.stop()
        errors_before = sample(
            "tailor_redis_errors_total", {"operation": "write", "kind": "ConnectionError"}
        )
        with pytest.raises(redis.ConnectionError):
            part.write_batch([output("u1", 2)])
    finally:
        server.stop()
        shutil.rmtree(server.dir, ignore_errors=True)
    errors = sample("tailor_redis_errors_total", {"operation": "write", "kind": "ConnectionError"})
    assert errors - errors_before == 4
    assert len(waits) == 3
    assert all(0 <= w <= 0.2 for w in waits)


def test_recovers_when_redis_comes_back(
    make_partition: Callable[..., _RedisSinkPartition],
) -> None:
    server = RedisServer()  # not started yet: the first attempts are refused
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 2:
            server.start()

    try:
        part = make_partition(server.url, max_attempts=5, sleep=sleep)
        part.write_batch([output("u1", 3, segment="cluster:7")])
        client = redis.Redis.from_url(server.url)
        assert orjson.loads(client.hget(user_key(PREFIX, "u1"), "version") or b"") == 3
        assert client.smembers(segment_key(PREFIX, "cluster:7")) == {b"u1"}
        assert client.xlen(updates_stream(PREFIX)) == 1
        client.close()
    finally:
        server.stop()
        shutil.rmtree(server.dir, ignore_errors=True)
    assert len(waits) == 2


def test_non_transient_errors_are_raised_at_once(sink: _RedisSinkPartition, r: redis.Redis) -> None:
    r.set(user_key(PREFIX, "u1"), "not a hash")
    before = sample("tailor_redis_errors_total", {"operation": "write", "kind": "ResponseError"})
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        sink.write_batch([output("u1", 1)])
    after = sample("tailor_redis_errors_total", {"operation": "write", "kind": "ResponseError"})
    assert after - before == 1


def test_unreachable_port_is_counted_per_attempt(
    make_partition: Callable[..., _RedisSinkPartition],
) -> None:
    part = make_partition(f"redis://127.0.0.1:{free_port()}/0", max_attempts=3)
    labels = {"operation": "write", "kind": "ConnectionError"}
    before = sample("tailor_redis_errors_total", labels)
    with pytest.raises(redis.ConnectionError) as raised:
        part.write_batch([output("u1", 1)])
    assert sample("tailor_redis_errors_total", labels) - before == 3
    assert any("gave up after 3 attempts" in note for note in raised.value.__notes__)


def test_retries_for_ever_by_default_until_redis_comes_back(
    make_partition: Callable[..., _RedisSinkPartition],
) -> None:
    server = RedisServer()  # not started: every attempt is refused until the 20th wait
    waits: list[float] = []
    up_while_waiting: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        up_while_waiting.append(sample("tailor_redis_up", {"operation": "write"}))
        if len(waits) == 20:
            server.start()

    try:
        part = make_partition(server.url, max_attempts=0, sleep=sleep, backoff_cap_s=0.3)
        part.write_batch([output("u1", 2)])
        client = redis.Redis.from_url(server.url)
        assert orjson.loads(client.hget(user_key(PREFIX, "u1"), "version") or b"") == 2
        client.close()
    finally:
        server.stop()
        shutil.rmtree(server.dir, ignore_errors=True)
    assert len(waits) == 20  # far past the 8 attempts of a bounded policy
    assert all(0 <= w <= 0.3 for w in waits)
    assert max(waits) > 0.05  # the backoff grew past its base
    assert set(up_while_waiting) == {0.0}
    assert sample("tailor_redis_up", {"operation": "write"}) == 1.0


def test_retrying_for_ever_ends_when_a_stop_is_requested(
    make_partition: Callable[..., _RedisSinkPartition],
) -> None:
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 3:
            lifecycle.request_stop()

    part = make_partition(f"redis://127.0.0.1:{free_port()}/0", max_attempts=0, sleep=sleep)
    try:
        with pytest.raises(redis.ConnectionError) as raised:
            part.write_batch([output("u1", 1)])
    finally:
        lifecycle.reset()
    assert len(waits) == 3
    assert any("gave up after 4 attempts" in note for note in raised.value.__notes__)


def test_a_server_error_still_counts_as_redis_up(sink: _RedisSinkPartition, r: redis.Redis) -> None:
    REDIS_UP.labels("write").set(0)
    r.set(user_key(PREFIX, "u2"), "not a hash")
    with pytest.raises(redis.ResponseError):
        sink.write_batch([output("u2", 1)])
    assert sample("tailor_redis_up", {"operation": "write"}) == 1.0


def test_retry_policy_bounds() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=-1)
    forever = RetryPolicy(max_attempts=0, base_s=0.05, cap_s=2.0)
    rng = random.Random(1)
    delays = [forever.delay(n, rng) for n in (1, 10, 10_000)]
    assert all(0 <= d <= 2.0 for d in delays)
    assert not forever.exhausted(10_000)
    assert RetryPolicy(max_attempts=3).exhausted(3) and not RetryPolicy(3).exhausted(2)
