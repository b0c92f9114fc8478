"""The Prometheus endpoint a user scrapes: every promised family is there after a run, with
real counts, and no label or value carries a user id; a fresh worker shows every error series
at 0."""

from __future__ import annotations

import urllib.request
from importlib.metadata import version
from pathlib import Path

import orjson
import redis
from prometheus_client import REGISTRY, start_http_server

from tailor.operators.metrics import EVENT_OUTCOMES, REDIS_ERROR_KINDS, REDIS_OPERATIONS
from tailor.operators.redis.keys import stream_key
from tailor.operators.redis.routing import partition_for
from tailor.state.profile.event import DEFAULT_EVENT_TYPES, REASONS
from tests.conftest import drain_worker, free_port
from tests.flows.metrics_support import running_worker, samples, scrape
from tests.flows.store_support import wait_until, write_config

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


def test_a_fresh_worker_exposes_every_error_series_at_zero(redis_url: str, tmp_path: Path) -> None:
    """Before any input or error, a dashboard's `rate()` and the alerts already have series:
    every dead-letter reason, every Redis operation and error kind, every event type's
    outcomes; and the build is labelled with the installed version."""
    port = free_port()
    config = write_config(tmp_path, "tailor.toml", metrics={"port": port})
    accepted = 'tailor_events_total{outcome="accepted",type="click"}'
    with running_worker(redis_url, config, tmp_path / "worker.log") as worker:
        wait_until(lambda: accepted in scrape(port), "the flow's event series")
        values = samples(scrape(port))
        assert worker.poll() is None, (tmp_path / "worker.log").read_text()[-3000:]
    zeros = [("tailor_dead_letters_total", {"reason": reason}) for reason in REASONS]
    zeros += [
        ("tailor_redis_errors_total", {"operation": operation, "kind": kind})
        for operation in REDIS_OPERATIONS
        for kind in REDIS_ERROR_KINDS
    ]
    zeros += [
        ("tailor_events_total", {"type": event_type, "outcome": outcome})
        for event_type in DEFAULT_EVENT_TYPES
        for outcome in EVENT_OUTCOMES
    ]
    zeros += [("tailor_snapshot_seconds_count", {"state": "models"})]
    for name, labels in zeros:
        assert values[(name, tuple(sorted(labels.items())))] == 0.0, (name, labels)
    assert values[("tailor_build_info", (("version", version("tailor")),))] == 1.0
