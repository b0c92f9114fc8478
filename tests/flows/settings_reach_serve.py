"""Where `tailor serve` and the worker's heartbeat hold their settings (`settings_reach`)."""

from __future__ import annotations

from typing import Any

from tailor.flows.config import Settings
from tailor.flows.serve.app import build_app
from tailor.flows.serve.command import address
from tailor.flows.worker import build_heartbeat
from tests.flows.reach import Reach


def serving(config: Settings) -> Any:
    """The handlers of the app `tailor serve` builds (the Redis client made, not connected)."""
    app = build_app(config.with_value("redis", "url", "redis://localhost:1/0"), None)
    return app.app.state.handlers  # type: ignore[union-attr]


def heartbeat_every(config: Settings) -> float | None:
    beat = build_heartbeat(config.with_value("redis", "url", "redis://localhost:1/0"))
    return None if beat is None else beat.every_s


SERVE_REACH: dict[tuple[str, ...], Reach] = {
    ("output", "heartbeat_every_s"): Reach(1.0, heartbeat_every),
    ("serve", "host"): Reach("0.0.0.0", lambda c: address(c, None, None)[0]),
    ("serve", "port"): Reach(9000, lambda c: address(c, None, None)[1]),
    ("serve", "heartbeat_max_age_s"): Reach(5.0, lambda c: serving(c).reader.heartbeat_max_age_s),
    ("serve", "fallbacks"): Reach(["popular"], lambda c: serving(c).reader.fallbacks),
    ("serve", "max_items"): Reach(20, lambda c: serving(c).max_items),
    ("serve", "page_size"): Reach(50, lambda c: serving(c).reader.page_size),
    ("serve", "segments_cache_s"): Reach(1.0, lambda c: serving(c).reader.segments_cache_s),
    ("serve", "redis_connections"): Reach(
        4, lambda c: serving(c).reader.client.connection_pool.max_connections
    ),
    ("serve", "redis_timeout_s"): Reach(
        0.5, lambda c: serving(c).reader.client.connection_pool.timeout
    ),
}
