"""`tailor serve` over what a real worker wrote: the users' lists and the published fallback
lists, so the reader and the writers hold the same contract."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import redis

from tailor.flows.produce import produce
from tailor.flows.sample import write_jsonl
from tailor.flows.segments_table import as_json, read_rows
from tailor.operators.redis.keys import fallback_key, fallbacks_key, recs_key, user_key
from tests.conftest import RedisServer, drain_worker
from tests.flows.serve_support import Served, serving

P = "apipub"


@pytest.fixture(scope="module")
def api(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A sample of 400 shoppers through a real worker, then `tailor serve` over it."""
    tmp = tmp_path_factory.mktemp("published")
    sample = tmp / "sample.jsonl"
    write_jsonl(sample, users=400, seed=5, archetypes=True)
    produce(redis_server.url, sample, prefix=P, partitions=2, adapter="jsonl", progress=False)
    drain_worker(redis_server.url, P, 2)
    with serving(redis_server.url, P, tmp / "serve.log") as served:
        yield served
    redis.Redis.from_url(redis_server.url).flushall()


@pytest.fixture
def db(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """The module's data: this fixture does not flush it between tests."""
    client = redis.Redis.from_url(redis_server.url)
    yield client
    client.close()


def stored(db: redis.Redis, key: str) -> dict[str, Any]:
    raw = db.get(key)
    assert raw is not None, key
    return dict(orjson.loads(raw))


def a_user(db: redis.Redis) -> str:
    key = next(iter(db.scan_iter(match=recs_key(P, "*"), count=1000)))
    return key.decode().removeprefix(recs_key(P, ""))


def test_a_users_own_list_is_what_the_worker_stored(api: Served, db: redis.Redis) -> None:
    user = a_user(db)
    body = api.json(f"/v1/users/{user}/recommendations")[1]
    own = stored(db, recs_key(P, user))
    assert body["fallback"] is None
    assert (body["version"], body["items"]) == (own["version"], own["items"])
    profile = api.json(f"/v1/users/{user}")[1]["profile"]
    assert profile["version"] == orjson.loads(db.hget(user_key(P, user), "version") or b"0")


def test_an_unknown_user_gets_the_published_trending_list(api: Served, db: redis.Redis) -> None:
    published = {name.decode() for name in db.hgetall(fallbacks_key(P))}
    assert {"popular", "trending"} <= published
    body = api.json("/v1/users/never-seen/recommendations")[1]
    trending = stored(db, fallback_key(P, "trending"))
    assert body["fallback"] == "trending"
    assert (body["version"], body["items"]) == (trending["version"], trending["items"])


def test_a_user_whose_list_expired_gets_their_segments_list(api: Served, db: redis.Redis) -> None:
    """`output.recs_ttl_s` expires a user's list; their profile (and segment) stays."""
    user = a_user(db)
    segment = orjson.loads(db.hget(user_key(P, user), "segment") or b'""')
    assert segment.startswith("cluster:")
    db.delete(recs_key(P, user))
    body = api.json(f"/v1/users/{user}/recommendations")[1]
    assert body["fallback"] == f"segment:{segment}"
    assert body["items"] == stored(db, fallback_key(P, f"segment:{segment}"))["items"]


def test_a_published_category_list_is_preferred(api: Served, db: redis.Redis) -> None:
    names = sorted(n.decode() for n in db.hgetall(fallbacks_key(P)) if n.startswith(b"category:"))
    assert names
    category = names[0].removeprefix("category:")
    listed = [i["item_id"] for i in stored(db, fallback_key(P, names[0]))["items"]]
    user = a_user(db)
    body = api.json(f"/v1/users/{user}/recommendations?category={category}")[1]
    assert (body["category"], body["fallback"]) == (category, names[0])
    assert sorted(i["item_id"] for i in body["items"]) == sorted(listed)


def test_segments_are_tailor_segments_json(api: Served, db: redis.Redis) -> None:
    body = api.json("/v1/segments")[1]
    assert body and body == orjson.loads(as_json(read_rows(db, P)))
