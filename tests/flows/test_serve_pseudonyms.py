"""`tailor serve` in a pseudonymous deployment: raw ids in, pseudonyms in Redis, as `tailor
inspect` does it; and a serving process whose ids differ from the worker's is refused."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tailor.operators.pseudonym import PLAIN, id_mode, pseudonym
from tailor.operators.redis.keys import META_IDS, meta_key
from tests.conftest import RedisServer
from tests.flows.serve_support import (
    Served,
    beat,
    publish_fallback,
    serve_env,
    serving,
    write_profile,
    write_recs,
)

P = "apip"
SECRET = "serve-test-key"
PSEUDONYMOUS = {"TAILOR_PRIVACY_PSEUDONYMIZE": "true", "TAILOR_PSEUDONYM_SECRET": SECRET}


@pytest.fixture(scope="module")
def api(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with serving(redis_server.url, P, log, **PSEUDONYMOUS) as served:
        yield served


def test_a_raw_id_is_hashed_as_the_worker_hashes_it(api: Served, r: redis.Redis) -> None:
    stored = pseudonym(SECRET.encode(), "alice")
    write_recs(r, P, stored, "a", "b")
    write_profile(r, P, stored, segment="cluster:1")
    write_recs(r, P, "bob", "x")  # stored under a raw id: not how this deployment names bob
    publish_fallback(r, P, "trending", "t1")
    body = api.json("/v1/users/alice/recommendations")[1]
    assert body["user_id"] == "alice" and body["fallback"] is None
    assert [i["item_id"] for i in body["items"]] == ["a", "b"]
    assert api.json("/v1/users/alice")[1]["profile"] == {"segment": "cluster:1"}
    assert api.json(f"/v1/users/{stored}")[0] == 404  # a pseudonym is not an id of the shop
    assert api.json("/v1/users/bob/recommendations")[1]["fallback"] == "trending"


def test_readyz_says_when_the_worker_names_users_otherwise(api: Served, r: redis.Redis) -> None:
    beat(r, P, 0, workers=1, age_s=0.1)
    r.hset(meta_key(P), META_IDS, id_mode(SECRET.encode()))
    status, body = api.json("/readyz")
    assert status == 200 and body["ids"]["match"] is True
    r.hset(meta_key(P), META_IDS, PLAIN)
    status, body = api.json("/readyz")
    assert status == 503 and body["ids"] == {
        "worker": PLAIN,
        "serve": id_mode(SECRET.encode()),
        "match": False,
    }


def test_serving_with_other_ids_than_the_worker_is_refused(
    redis_url: str, r: redis.Redis, tmp_path: Path
) -> None:
    r.hset(meta_key(P), META_IDS, PLAIN)
    done = subprocess.run(
        [sys.executable, "-m", "tailor.flows.cli", "serve", "--port", "1"],
        env=serve_env(redis_url, P, **PSEUDONYMOUS),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr[-3000:]
    assert "configuration error: serve: the worker stores raw user ids" in done.stderr
