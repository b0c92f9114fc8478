"""The last `tailor resegment` result as Prometheus gauges on the worker's endpoint.

`tailor resegment` runs from cron (or by hand) and keeps its result in Redis
(`tailor.operators.redis.keys.resegment_key`); Prometheus scrapes the worker, so the worker's
endpoint reads that result at each scrape and exposes it: how well each batch method agrees with the
live segments, the suggested number of segments, how many users were checked and when. An
alert on a falling agreement or an old timestamp is then a Prometheus rule like any other.
Nothing is exposed before the first check, or while Redis does not answer (the worker's
`tailor_redis_up` says so).
"""

from __future__ import annotations

from collections.abc import Iterator

import orjson
import redis
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from redis.exceptions import RedisError

from tailor.operators.redis.keys import resegment_key

__all__ = ["ResegmentCollector"]


class ResegmentCollector(Collector):
    """Gauges from the stored `tailor resegment` result, read at each scrape."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.client = client
        self.prefix = prefix

    def describe(self) -> list[GaugeMetricFamily]:
        return []  # registering must not read Redis

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            raw = self.client.get(resegment_key(self.prefix))
        except RedisError:
            return
        if not isinstance(raw, bytes | str) or not raw:
            return
        result = orjson.loads(raw)
        ari = GaugeMetricFamily(
            "tailor_resegment_ari",
            "Adjusted Rand index of each batch method with the live segments, last check",
            labels=["method"],
        )
        for method, agreement in sorted(result.get("agreement", {}).items()):
            ari.add_metric([method], float(agreement["ari_live"]))
        yield ari
        for name, help_text, key in (
            ("tailor_resegment_suggested_segments", "Suggested number of segments", "suggested_k"),
            ("tailor_resegment_users", "Users with a live segment, last check", "users"),
            ("tailor_resegment_timestamp_seconds", "When the last check ran (Unix time)", "at"),
        ):
            yield GaugeMetricFamily(name, help_text, value=float(result[key]))
