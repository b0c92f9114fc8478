"""The worker's endpoint exposes the last `tailor resegment` result, read from Redis."""

from __future__ import annotations

import redis
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest

from tailor.flows.config import load_config
from tailor.flows.resegment import KScore, Resegmented, as_json
from tailor.flows.resegment_metrics import ResegmentCollector
from tailor.flows.runner import expose_resegment
from tailor.operators.redis.keys import resegment_key
from tests.conftest import free_port


def exposition(client: redis.Redis, prefix: str) -> str:
    registry = CollectorRegistry()
    registry.register(ResegmentCollector(client, prefix))
    return generate_latest(registry).decode()


def result() -> Resegmented:
    return Resegmented(
        users=1234,
        live={"cluster:0": 600, "cluster:1": 634},
        k_scores=[KScore(2, 0.3, 1.1, 0.95)],
        suggested_k=2,
        agreement={
            "k-means": {"clusters": 2.0, "ari_live": 0.42, "silhouette": 0.3},
            "HDBSCAN": {"clusters": 3.0, "ari_live": 0.11, "silhouette": 0.1},
        },
        confusion={},
        clusters={},
        at=1_765_000_000.0,
    )


def test_gauges_follow_the_stored_result(r: redis.Redis) -> None:
    assert "tailor_resegment" not in exposition(r, "m")  # no check yet: nothing exposed
    r.set(resegment_key("m"), as_json(result()))
    text = exposition(r, "m")
    assert 'tailor_resegment_ari{method="k-means"} 0.42' in text
    assert 'tailor_resegment_ari{method="HDBSCAN"} 0.11' in text
    assert "tailor_resegment_suggested_segments 2.0" in text
    assert "tailor_resegment_users 1234.0" in text
    assert "tailor_resegment_timestamp_seconds 1.765e+09" in text


def test_a_redis_that_does_not_answer_exposes_nothing_and_raises_nothing() -> None:
    gone = redis.Redis(port=free_port(), socket_connect_timeout=0.2)
    assert "tailor_resegment" not in exposition(gone, "m")


def test_the_worker_endpoint_serves_them_once(redis_url: str, r: redis.Redis) -> None:
    """`tailor run` with a metrics port registers the collector (once per prefix)."""
    config = load_config(env={}).with_value("redis", "url", redis_url)
    config = config.with_value("redis", "prefix", "served")
    expose_resegment(config)
    expose_resegment(config)
    r.set(resegment_key("served"), as_json(result()))
    assert REGISTRY.get_sample_value("tailor_resegment_users") == 1234.0
    text = generate_latest(REGISTRY).decode()
    assert text.count("\ntailor_resegment_users ") == 1
