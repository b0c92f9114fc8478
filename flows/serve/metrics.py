"""`tailor serve`'s own Prometheus metrics: requests by route and status, latency in seconds.

A pure ASGI wrapper around the app (no per-request task or body buffering), with its own
registry: the worker's metrics live in another process, and an app built twice in one
process (tests) must not register twice. The route label is the route's template
(``/v1/users/{user_id}/recommendations``), never the path: user ids stay out of the metrics.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)

__all__ = ["UNMATCHED", "HttpMetrics"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

#: The route label of a request no route matched (a 404 of the router).
UNMATCHED = "unmatched"
#: Latency buckets (seconds): the API answers in about a millisecond; the tail matters.
BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
_CONVERTOR = re.compile(r":\w+}")


def route_label(path: str) -> str:
    """A route template without its convertors.

    >>> route_label("/v1/users/{user_id:path}/recommendations")
    '/v1/users/{user_id}/recommendations'
    """
    return _CONVERTOR.sub("}", path)


class HttpMetrics:
    """Wraps an ASGI app (`wrapping`); `exposition` is the body of ``/metrics``."""

    def __init__(self) -> None:
        self.app: App | None = None
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self.requests = Counter(
            "tailor_http_requests",
            "HTTP requests answered by tailor serve, by route template and status code.",
            ["route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "tailor_http_request_duration_seconds",
            "Time from a request's arrival to its last response byte handed to the server.",
            ["route"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self._series: dict[tuple[str | None, int], tuple[Any, Any]] = {}

    def wrapping(self, app: App) -> HttpMetrics:
        """Count `app`'s requests (the app's ``/metrics`` route reads this object)."""
        self.app = app
        return self

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.app is not None, "wrap an app first"
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # what a request that raised before answering counts as

        async def send_counted(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_counted)
        finally:
            latency, count = self._children(getattr(scope.get("route"), "path", None), status)
            latency.observe(time.perf_counter() - start)
            count.inc()

    def _children(self, path: str | None, status: int) -> tuple[Any, Any]:
        """The histogram and counter of a route template and status (looked up once each:
        `labels()` costs as much as the rest of the bookkeeping)."""
        found = self._series.get((path, status))
        if found is None:
            route = UNMATCHED if path is None else route_label(path)
            found = (self.latency.labels(route), self.requests.labels(route, str(status)))
            self._series[(path, status)] = found
        return found

    def exposition(self) -> tuple[bytes, str]:
        """The text format, and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
