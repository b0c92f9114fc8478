"""State TTL in a running worker: one-visit users leave the worker's memory after the TTL."""

from __future__ import annotations

import threading
import time

import orjson
import redis
from bytewax.testing import run_main
from prometheus_client import REGISTRY
from redis.client import PubSub

from tailor.flows.config import load_config
from tailor.flows.worker import build_redis_flow
from tailor.operators import lifecycle
from tailor.operators.redis.keys import stream_key, updates_channel
from tailor.operators.redis.routing import partition_for

PREFIX = "ttl"
USERS = 300


def active_users() -> float:
    """Users held by either per-user step: the state step and the outputs step."""
    state = REGISTRY.get_sample_value("tailor_active_users") or 0.0
    outputs = REGISTRY.get_sample_value("tailor_active_output_users") or 0.0
    return state + outputs


def watch(pubsub: PubSub, baseline: float, seen: dict[str, float]) -> None:
    """Wait for every user's notice, note the gauge's peak, then wait for it to fall back."""
    notified: set[str] = set()
    deadline = time.monotonic() + 60
    try:
        while len(notified) < USERS and time.monotonic() < deadline:
            message = pubsub.get_message(timeout=1)
            if message and message["type"] == "message":
                notified.add(orjson.loads(message["data"])["user_id"])
        seen["notified"] = len(notified)
        seen["peak"] = active_users() - baseline
        while active_users() > baseline and time.monotonic() < deadline:
            time.sleep(0.05)  # the condition is the gauge; TTL expiry is wall-clock by nature
        seen["after"] = active_users() - baseline
    finally:
        pubsub.close()
        lifecycle.request_stop()


def test_one_visit_users_expire_after_the_ttl(redis_url: str, r: redis.Redis) -> None:
    config = load_config(env={})
    for section, key, value in [
        ("redis", "url", redis_url),
        ("redis", "prefix", PREFIX),
        ("source", "partitions", 2),
        ("state", "ttl_s", 1.0),
    ]:
        config = config.with_value(section, key, value)
    baseline, seen = active_users(), {}
    lifecycle.reset()
    pubsub = r.pubsub()
    pubsub.subscribe(updates_channel(PREFIX))
    assert pubsub.get_message(timeout=5)["type"] == "subscribe"  # type: ignore[index]
    watcher = threading.Thread(target=watch, args=(pubsub, baseline, seen), daemon=True)
    watcher.start()
    pipe = r.pipeline(transaction=False)
    for n in range(USERS):
        user = f"visitor-{n}"
        event = {"event_id": f"v{n}", "user_id": user, "type": "page_view", "ts": 1_700_000_000 + n}
        pipe.xadd(stream_key(PREFIX, partition_for(user, 2)), {"payload": orjson.dumps(event)})
    pipe.execute()
    try:
        run_main(build_redis_flow(config))
    finally:
        lifecycle.reset()
    watcher.join(timeout=5)
    assert seen["notified"] == USERS
    # alive in both steps at some point after their write (each user counts in each step)
    assert seen["peak"] > USERS
    assert seen["after"] == 0
