"""The sink writes what it is given: the stored memberships decide the sets left, churn is
written as reported, recommendations expire when told to (decision 0023)."""

from __future__ import annotations

from collections.abc import Callable

import orjson
import redis

from tailor.operators.records import ChurnReport
from tailor.operators.redis.keys import churn_key, recs_key, segment_key, user_key
from tailor.operators.redis.sink import _RedisSinkPartition
from tests.operators.sink_support import PREFIX, members, output


def test_the_sets_left_are_those_the_stored_profile_names(
    sink: _RedisSinkPartition, r: redis.Redis
) -> None:
    """The script leaves the sets the stored `memberships` names, whatever the other fields
    say: it derives nothing from them."""
    sink.write_batch([output("u1", 1, segment="cluster:1", rules=("a",))])
    r.hset(user_key(PREFIX, "u1"), "memberships", orjson.dumps(["rule:a"]))
    r.sadd(segment_key(PREFIX, "cluster:9"), "u1")  # not named: left alone
    sink.write_batch([output("u1", 2, segment="cluster:2")])
    assert members(r, "rule:a") == set()
    assert members(r, "cluster:1") == {"u1"}  # the stored profile no longer named it
    assert members(r, "cluster:2") == {"u1"}
    assert members(r, "cluster:9") == {"u1"}


def test_a_churn_report_is_written_as_given(sink: _RedisSinkPartition, r: redis.Redis) -> None:
    sink.write_batch([ChurnReport(10, 3, 9, 1), ChurnReport(11, 1, 10, 3)])
    churn = {k.decode(): int(v) for k, v in r.hgetall(churn_key(PREFIX)).items()}
    assert churn == {"hour": 11, "moves": 1, "previous_hour": 10, "previous_moves": 3}


def test_recs_expire_when_a_ttl_is_set(
    make_partition: Callable[..., _RedisSinkPartition], r: redis.Redis
) -> None:
    sink = make_partition(recs_ttl_s=3600)
    sink.write_batch([output("u1", 1, recs=("i1",))])
    assert 3500 < r.ttl(recs_key(PREFIX, "u1")) <= 3600
    assert r.ttl(user_key(PREFIX, "u1")) == -1  # the profile stays
    sink.write_batch([output("u1", 2, segment="cluster:2", recs=("i1",))])
    assert 3500 < r.ttl(recs_key(PREFIX, "u1")) <= 3600  # renewed by each write
