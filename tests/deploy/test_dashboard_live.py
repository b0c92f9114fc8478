"""Every dashboard panel shows data from a real stack: a real Prometheus (the stack's config
and rules, one-second intervals) scraping a real `tailor run` fed with events, queried through
Prometheus's HTTP API exactly as the Grafana panels query it; and every rule evaluates
without an error on those series."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import redis

from tailor.operators.redis.keys import stream_key
from tailor.operators.redis.routing import partition_for
from tests.conftest import free_port
from tests.deploy.prometheus_support import PrometheusServer, has_data
from tests.deploy.stack_support import (
    dashboard,
    panel_queries,
    require_binary,
    rule_expressions,
)
from tests.flows.metrics_support import running_worker
from tests.flows.store_support import DEADLINE_S, write_config

USERS = [f"shopper-{n}" for n in range(12)]
ITEMS = [f"item-{n}" for n in range(8)]
#: write_config's stream partitions.
PARTITIONS = 2


def feed(r: redis.Redis, prefix: str, wave: int) -> None:
    """One wave: every user views two items and buys one (recommendations get tested and
    RFM tiers filled), plus one payload the worker refuses."""
    now = time.time()
    pipe = r.pipeline(transaction=False)
    for n, user in enumerate(USERS):
        for k, kind in enumerate(("product_view", "product_view", "purchase")):
            event = {
                "event_id": f"w{wave}-{n}-{k}",
                "user_id": user,
                "type": kind,
                "ts": now + k * 0.001,
                "item_id": ITEMS[(n + wave + k) % len(ITEMS)],
                "price": 10.0 + n,
            }
            key = stream_key(prefix, partition_for(user, PARTITIONS))
            pipe.xadd(key, {"payload": orjson.dumps(event)})
    pipe.xadd(stream_key(prefix, 0), {"payload": b'{"user_id": "shopper-0"'})
    pipe.execute()


def test_every_dashboard_query_returns_data(r: redis.Redis, redis_url: str, tmp_path: Path) -> None:
    binary = require_binary("prometheus")
    queries = panel_queries(dashboard())
    port = free_port()
    config = write_config(tmp_path, "tailor.toml", metrics={"port": port})
    prefix = "store"  # write_config's
    log = tmp_path / "worker.log"
    with (
        running_worker(redis_url, config, log) as worker,
        PrometheusServer(binary, f"127.0.0.1:{port}") as prometheus,
    ):
        deadline = time.monotonic() + DEADLINE_S
        wave = 0
        while True:
            # Waves while Prometheus scrapes: rate() needs counters that grow between scrapes.
            feed(r, prefix, wave)
            wave += 1
            missing = [(t, q) for t, q in queries if not has_data(prometheus.query(q))]
            if not missing:
                break
            assert worker.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, f"no data after {DEADLINE_S} s: {missing}"
            time.sleep(0.5)  # polling Prometheus with a deadline
        rules = prometheus.rules()
    # every recording and alert rule evaluated on the real series without an error
    assert len(rules) == len(rule_expressions())
    assert [r["name"] for r in rules if r["health"] != "ok"] == [], rules
