"""The Prometheus endpoint a user scrapes: every promised family is there after a run, with
real counts, and no label or value carries a user id."""

from __future__ import annotations

import urllib.request

import orjson
import redis
from prometheus_client import REGISTRY, start_http_server

from tailor.operators.redis.keys import stream_key
from tailor.operators.redis.routing import partition_for
from tests.conftest import drain_worker

PREFIX = "metrics"
USERS = [f"secret-user-{n}" for n in range(6)]
FAMILIES = [
    "tailor_events_total",
    "tailor_dead_letters_total",
    "tailor_event_to_redis_seconds_bucket",
    "tailor_event_time_to_redis_seconds_bucket",
    "tailor_source_batch_entries_bucket",
    "tailor_sink_batch_users_bucket",
    "tailor_active_users",
    "tailor_active_output_users",
    "tailor_segment_users",
]


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_endpoint_serves_every_family_and_no_user_ids(redis_url: str, r: redis.Redis) -> None:
    pipe = r.pipeline(transaction=False)
    for n, user in enumerate(USERS * 3):
        event = {
            "event_id": f"m{n}",
            "user_id": user,
            "type": "product_view",
            "ts": 1_700_000_000 + n,
            "item_id": f"i{n % 4}",
        }
        pipe.xadd(stream_key(PREFIX, partition_for(user, 2)), {"payload": orjson.dumps(event)})
    pipe.xadd(stream_key(PREFIX, 0), {"payload": b'{"user_id": "secret-user-0"'})
    pipe.execute()
    views = sample("tailor_events_total", type="product_view", outcome="accepted")
    malformed = sample("tailor_dead_letters_total", reason="malformed_json")
    latencies = sample("tailor_event_to_redis_seconds_count")

    # segments from the first learn point, so this run alone publishes segment sizes
    drain_worker(redis_url, PREFIX, 2, segments__warmup=1)

    server, thread = start_http_server(0)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.server_port}/metrics") as reply:
            text = reply.read().decode()
    finally:
        server.shutdown()
        thread.join()
    for family in FAMILIES:
        assert f"\n{family}" in text, family
    assert "secret-user" not in text
    assert sample("tailor_events_total", type="product_view", outcome="accepted") == views + 18
    assert sample("tailor_dead_letters_total", reason="malformed_json") == malformed + 1
    assert sample("tailor_event_to_redis_seconds_count") == latencies + 18
