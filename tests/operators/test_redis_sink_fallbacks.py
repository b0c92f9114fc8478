"""The sink's writes of the lists for users without history, against a real Redis: the stored
bytes, the hash of versions, the version guard, blocked items, and what an erasure leaves."""

from __future__ import annotations

import orjson
import redis

from tailor.operators.records import Erasure, FallbackList
from tailor.operators.redis.keys import blocklist_key, fallback_key, fallbacks_key
from tailor.operators.redis.sink import _RedisSinkPartition
from tests.operators.sink_support import PREFIX, output

AT = 1_700_000_000.5


def listed(
    kind: str = "popular", group: str = "", version: int = 1, items: str = "a b c"
) -> FallbackList:
    """A list of `items` (space-separated), scores 3, 2, 1, ..."""
    names = items.split()
    scored = tuple((item, float(len(names) - n)) for n, item in enumerate(names))
    return FallbackList(kind, group, version, AT + version, scored)


def stored(r: redis.Redis, name: str) -> bytes | None:
    return r.get(fallback_key(PREFIX, name))  # type: ignore[return-value]


def test_a_list_is_stored_as_sorted_key_json_with_its_version_in_the_hash(
    sink: _RedisSinkPartition, r: redis.Redis
) -> None:
    sink.write_batch([listed(version=7, items="a b"), listed("segment", "cluster:3", 5, "c")])
    assert stored(r, "popular") == (
        b'{"at":1700000007.5,"items":[{"item_id":"a","score":2.0},'
        b'{"item_id":"b","score":1.0}],"version":7}'
    )
    value = orjson.loads(stored(r, "segment:cluster:3") or b"")
    assert value == {"at": AT + 5, "items": [{"item_id": "c", "score": 1.0}], "version": 5}
    assert r.hgetall(fallbacks_key(PREFIX)) == {b"popular": b"7", b"segment:cluster:3": b"5"}


def test_only_a_newer_version_replaces_a_list(sink: _RedisSinkPartition, r: redis.Redis) -> None:
    sink.write_batch([listed(version=5, items="a b")])
    first = stored(r, "popular")
    sink.write_batch([listed(version=4, items="z")])  # a replay, or a slower writer
    sink.write_batch([listed(version=5, items="z")])  # the same version again
    assert stored(r, "popular") == first
    assert r.hget(fallbacks_key(PREFIX), "popular") == b"5"
    sink.write_batch([listed(version=6, items="z")])
    assert orjson.loads(stored(r, "popular") or b"")["items"] == [{"item_id": "z", "score": 1.0}]


def test_a_batch_writes_the_newest_of_each_list_once(
    sink: _RedisSinkPartition, r: redis.Redis
) -> None:
    r.config_resetstat()
    batch = [listed(version=3, items="c"), listed(version=9, items="n"), listed(version=4)]
    sink.write_batch([*batch, listed("trending", version=2, items="t")])
    assert r.info("commandstats")["cmdstat_evalsha"]["calls"] == 2  # one per list
    assert orjson.loads(stored(r, "popular") or b"")["version"] == 9
    assert orjson.loads(stored(r, "trending") or b"")["version"] == 2


def test_an_item_in_the_blocklist_is_dropped_whatever_the_worker_knew(
    sink: _RedisSinkPartition, r: redis.Redis
) -> None:
    r.sadd(blocklist_key(PREFIX), "b")  # `tailor block` ran; the worker has not heard yet
    sink.write_batch([listed("category", "shoes", 2, "a b c")])
    items = orjson.loads(stored(r, "category:shoes") or b"")["items"]
    assert [i["item_id"] for i in items] == ["a", "c"]


def test_an_erasure_leaves_the_lists_as_they_are(sink: _RedisSinkPartition, r: redis.Redis) -> None:
    sink.write_batch([output("u1", 1), listed(version=3)])
    before = stored(r, "popular")
    sink.write_batch([Erasure("u1", "forget")])
    assert r.exists(f"{PREFIX}:user:u1") == 0
    assert stored(r, "popular") == before
    assert r.hgetall(fallbacks_key(PREFIX)) == {b"popular": b"3"}
