"""Profiles stored by an earlier release get their `memberships` before a worker writes."""

from __future__ import annotations

import orjson
import redis

from tailor.operators.redis.keys import META_SCHEMA, meta_key, segment_key, user_key
from tailor.operators.redis.sink import _RedisSinkPartition
from tailor.operators.redis.upgrade import SCHEMA, upgrade
from tests.operators.sink_support import PREFIX, members, output, profile


def legacy_profile(r: redis.Redis, user: str, segment: str, rfm: str, rules: list[str]) -> None:
    """A profile as the release before schema 2 wrote it: no `memberships` field."""
    fields = {"version": 3, "segment": segment, "rfm_segment": rfm, "rule_segments": rules}
    r.hset(user_key(PREFIX, user), mapping={k: orjson.dumps(v) for k, v in fields.items()})
    for id_ in [segment, f"rfm:{rfm}" if rfm else "", *(f"rule:{n}" for n in rules)]:
        if id_:
            r.sadd(segment_key(PREFIX, id_), user)


def test_legacy_profiles_get_their_memberships_once(r: redis.Redis) -> None:
    legacy_profile(r, "u1", "cluster:2", "champions", ["b", "a"])
    legacy_profile(r, "u2", "", "", [])
    assert upgrade(r, PREFIX) == 2
    assert profile(r, "u1")["memberships"] == ["cluster:2", "rfm:champions", "rule:a", "rule:b"]
    assert profile(r, "u2")["memberships"] == []
    assert int(r.hget(meta_key(PREFIX), META_SCHEMA) or 0) == SCHEMA
    legacy_profile(r, "u3", "cluster:1", "", [])
    assert upgrade(r, PREFIX) == 0  # the schema is recorded: no second scan
    assert "memberships" not in profile(r, "u3")


def test_after_the_upgrade_a_write_leaves_the_legacy_sets(
    sink: _RedisSinkPartition, r: redis.Redis
) -> None:
    legacy_profile(r, "u1", "cluster:2", "champions", ["a"])
    upgrade(r, PREFIX)
    sink.write_batch([output("u1", 4, segment="cluster:1")])
    assert members(r, "cluster:2") == members(r, "rfm:champions") == members(r, "rule:a") == set()
    assert members(r, "cluster:1") == {"u1"}


def test_a_stored_memberships_field_is_never_overwritten(r: redis.Redis) -> None:
    legacy_profile(r, "u1", "cluster:2", "", [])
    r.hset(user_key(PREFIX, "u1"), "memberships", orjson.dumps(["cluster:7"]))
    assert upgrade(r, PREFIX) == 0
    assert profile(r, "u1")["memberships"] == ["cluster:7"]
