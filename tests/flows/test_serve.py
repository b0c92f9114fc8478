"""`tailor serve` over real HTTP: a real server process against the tests' real Redis.

The data is written as the worker writes it (and the fallback lists as their publisher does,
`serve_support`); every answer is read through a real TCP round trip.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import redis

from tailor.flows.config import load_config
from tailor.flows.segments_table import as_json, read_rows
from tailor.flows.serve.app import build_app
from tailor.flows.serve.metrics import route_label
from tailor.operators.redis.keys import model_key, segment_key, segments_key
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

P = "api"


@pytest.fixture(scope="module")
def api(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with serving(redis_server.url, P, log) as served:
        yield served


def test_a_users_own_list_cut_to_n(api: Served, r: redis.Redis) -> None:
    write_recs(r, P, "u1", "a", "b", "c", version=7)
    publish_fallback(r, P, "trending", "t1")
    status, body = api.json("/v1/users/u1/recommendations?n=2")
    assert status == 200
    assert body["fallback"] is None and body["category"] is None
    assert (body["user_id"], body["version"]) == ("u1", 7)
    assert [i["item_id"] for i in body["items"]] == ["a", "b"]
    assert body["items"][0]["source"] == "cooc"
    assert len(api.json("/v1/users/u1/recommendations")[1]["items"]) == 3


def test_an_unknown_user_gets_the_best_published_fallback_flagged(
    api: Served, r: redis.Redis
) -> None:
    publish_fallback(r, P, "popular", "p1", "p2")
    status, body = api.json("/v1/users/nobody/recommendations")
    assert status == 200 and body["fallback"] == "popular"
    assert [i["item_id"] for i in body["items"]] == ["p1", "p2"]
    publish_fallback(r, P, "trending", "t1", "t2", "t3", version=5)  # before popular
    status, body = api.json("/v1/users/nobody/recommendations?n=2")
    assert (body["fallback"], body["version"]) == ("trending", 5)
    assert [i["item_id"] for i in body["items"]] == ["t1", "t2"]
    anonymous = api.json("/v1/recommendations")
    assert anonymous[0] == 200 and anonymous[1]["fallback"] == "trending"
    assert anonymous[1]["user_id"] is None


def test_a_known_user_without_a_list_gets_their_segments_list(api: Served, r: redis.Redis) -> None:
    write_profile(r, P, "u2", segment="cluster:3", version=1)
    publish_fallback(r, P, "trending", "t1")
    publish_fallback(r, P, "segment:cluster:3", "s1", "s2")
    body = api.json("/v1/users/u2/recommendations")[1]
    assert body["fallback"] == "segment:cluster:3"
    assert [i["item_id"] for i in body["items"]] == ["s1", "s2"]
    assert api.json("/v1/users/other/recommendations")[1]["fallback"] == "trending"


def test_nothing_published_is_a_404(api: Served) -> None:
    status, body = api.json("/v1/users/nobody/recommendations")
    assert status == 404 and "fallback" in body["error"]


def test_a_category_prefers_the_users_items_in_its_list(api: Served, r: redis.Redis) -> None:
    write_recs(r, P, "u3", "a", "shoe2", "b", "shoe1")
    publish_fallback(r, P, "category:shoes", "shoe1", "shoe2", "shoe3", version=9)
    status, body = api.json("/v1/users/u3/recommendations?category=shoes")
    assert status == 200
    assert (body["category"], body["fallback"], body["version"]) == ("shoes", "category:shoes", 9)
    assert [i["item_id"] for i in body["items"]] == ["shoe2", "shoe1", "shoe3"]
    assert api.json("/v1/users/u3/recommendations?category=shoes&n=1")[1]["items"] == [
        body["items"][0]
    ]
    anonymous = api.json("/v1/recommendations?category=shoes")[1]
    assert [i["item_id"] for i in anonymous["items"]] == ["shoe1", "shoe2", "shoe3"]
    unknown = api.json("/v1/users/u3/recommendations?category=hats")[1]  # no such list
    assert unknown["category"] is None and unknown["fallback"] is None
    assert [i["item_id"] for i in unknown["items"]] == ["a", "shoe2", "b", "shoe1"]


@pytest.mark.parametrize("query", ["n=0", "n=101", "n=ten"])
def test_a_bad_n_is_a_400(api: Served, r: redis.Redis, query: str) -> None:
    write_recs(r, P, "u1", "a")
    status, body = api.json(f"/v1/users/u1/recommendations?{query}")
    assert status == 400 and body["error"].startswith("n: ")


def test_the_profile_decoded(api: Served, r: redis.Redis) -> None:
    write_profile(r, P, "u/4", segment="cluster:1", rule_segments=["vip"], features={"x": 1.5})
    status, body = api.json("/v1/users/u%2F4")
    assert status == 200 and body["user_id"] == "u/4"
    assert body["profile"] == {
        "features": {"x": 1.5},
        "rule_segments": ["vip"],
        "segment": "cluster:1",
    }
    assert api.json("/v1/users/nobody")[0] == 404


def test_segments_as_tailor_segments_json_shows_them(api: Served, r: redis.Redis) -> None:
    record = {"segments": {"cluster:0": {"name": "browsers", "zscores": {"views_1h": 2.0}}}}
    r.hset(model_key(P), mapping={"version": 10, "record": orjson.dumps(record)})
    info = {"name": "browsers", "centroid": {}, "version": 2, "changed_at": 1_767_225_600.0}
    r.hset(segments_key(P), "cluster:0", orjson.dumps(info))
    r.sadd(segment_key(P, "cluster:0"), "a", "b")
    r.sadd(segment_key(P, "rule:vip"), "a")
    status, body = api.json("/v1/segments")
    assert status == 200
    assert body == orjson.loads(as_json(read_rows(r, P)))
    assert [(row["segment"], row["size"]) for row in body] == [("cluster:0", 2), ("rule:vip", 1)]


def test_members_page_by_cursor_over_a_large_segment(api: Served, r: redis.Redis) -> None:
    everyone = {f"user-{n:05d}" for n in range(1000)}  # pages of about 50 (serve.page_size)
    r.sadd(segment_key(P, "rule:vip"), *everyone)
    seen: list[str] = []
    cursor: int | None = 0
    pages = 0
    while cursor is not None:
        status, body = api.json(f"/v1/segments/rule:vip/members?cursor={cursor}")
        assert status == 200 and body["segment"] == "rule:vip"
        seen += body["members"]
        cursor = body["cursor"]
        pages += 1
        assert pages < 200, "the cursor never came back to the start"
    assert pages > 5 and set(seen) == everyone
    assert api.json("/v1/segments/rule:nobody/members")[0] == 404
    assert api.json("/v1/segments/rule:vip/members?cursor=-1")[0] == 400


def test_healthz(api: Served) -> None:
    assert api.json("/healthz") == (200, {"status": "ok"})


def test_readyz_needs_every_workers_fresh_heartbeat(api: Served, r: redis.Redis) -> None:
    status, body = api.json("/readyz")
    assert status == 503 and body["redis"] is True and not body["ready"]
    assert body["workers"] == [{"worker": 0, "heartbeat_age_s": None}]
    beat(r, P, 0, workers=2, age_s=0.5)
    beat(r, P, 1, workers=2, age_s=60.0)  # stale: older than serve.heartbeat_max_age_s (5)
    status, body = api.json("/readyz")
    assert status == 503 and [w["worker"] for w in body["workers"]] == [0, 1]
    assert body["workers"][1]["heartbeat_age_s"] >= 60.0
    beat(r, P, 1, workers=2, age_s=0.5)
    status, body = api.json("/readyz")
    assert status == 200 and body["ready"] is True
    r.delete(f"{P}:heartbeat:1")  # a worker whose beat expired
    assert api.json("/readyz")[0] == 503


def test_metrics_count_requests_by_route_and_status(api: Served, r: redis.Redis) -> None:
    write_recs(r, P, "secret-user-7", "a")
    for _ in range(3):
        assert api.get("/v1/users/secret-user-7/recommendations")[0] == 200
    assert api.get("/v1/users/secret-user-7/recommendations?n=0")[0] == 400
    status, text, headers = api.get("/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain")
    metrics = text.decode()
    route = '{route="/v1/users/{user_id}/recommendations",status="200"}'
    found = re.search(r"^tailor_http_requests_total" + re.escape(route) + r" (\S+)$", metrics, re.M)
    assert found is not None and float(found.group(1)) >= 3.0
    assert 'status="400"' in metrics
    assert "tailor_http_request_duration_seconds_bucket{le=" in metrics
    assert "secret-user-7" not in metrics


def test_the_openapi_document_lists_every_route(api: Served) -> None:
    status, document = api.json("/openapi.json")
    assert status == 200 and document["openapi"].startswith("3.")
    config = load_config(env={"REDIS_URL": "redis://localhost:1/0"})
    app = build_app(config, None).app
    paths = {route_label(route.path) for route in app.routes}  # type: ignore[union-attr]
    assert set(document["paths"]) == paths
    assert len(paths) == 9


def test_an_unreachable_redis_is_a_503(
    tmp_path: Path, redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> None:
    dead = RedisServer()  # a port nothing listens on
    with serving(dead.url, P, tmp_path / "serve.log") as served:
        assert served.json("/healthz")[0] == 200
        status, body = served.json("/readyz")
        assert status == 503 and body == {
            "ready": False,
            "redis": False,
            "error": "ConnectionError",
        }
        status, body = served.json("/v1/users/u1/recommendations")
        assert status == 503 and "Redis" in body["error"]


def test_a_stalled_redis_is_a_503_within_the_timeout(api: Served, r: redis.Redis) -> None:
    """Redis paused (CLIENT PAUSE): the request gives up after serve.redis_timeout_s (0.5 s
    here) instead of waiting for it."""
    write_recs(r, P, "u1", "a")
    r.client_pause(3000)  # every other client's commands wait 3 s
    status, body = api.json("/v1/users/u1/recommendations")
    assert status == 503 and "TimeoutError" in body["error"]
    status, body = api.json("/readyz")
    assert status == 503 and body == {"ready": False, "redis": False, "error": "TimeoutError"}


def test_a_taken_port_is_a_configuration_error(api: Served, redis_url: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tailor.flows.cli", "serve", "--port", str(api.port)],
        env=serve_env(redis_url, P),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr[-3000:]
    assert f"serve.port: cannot listen on 127.0.0.1:{api.port}" in done.stderr
