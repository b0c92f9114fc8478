"""The ASGI app of `tailor serve`: Starlette routes over `tailor.flows.serve.reads.Reader`.

One async Redis client per app, on one blocking connection pool (`serve.redis_connections`):
no connection per request. A request's Redis work is bounded as a whole by
`serve.redis_timeout_s` (one timer per request, not one per command: the per-command socket
timeouts cost 8% of the CPU of a request). Every answer is JSON (orjson); an unreachable or
stalled Redis answers 503, a bad parameter 400.

At start-up the objects already allocated are frozen out of the garbage collector's view
and young collections made rarer (`quiet_gc`): a request leaves almost no cyclic garbage,
and a full collection over the imported modules stalled every request in flight.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import orjson
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tailor.flows.serve.metrics import HttpMetrics
from tailor.flows.serve.openapi import document
from tailor.flows.serve.reads import Reader
from tailor.flows.settings import ServeSettings, Settings

__all__ = ["BadParameter", "build_app", "redis_client"]

_JSON = "application/json"
T = TypeVar("T")
#: /v1/segments scans the keyspace (as `tailor segments` does): it gets this many times
#: `serve.redis_timeout_s`.
SEGMENTS_SCALE = 10.0
#: Young-generation GC threshold while serving (CPython's default is 700); older
#: generations keep their defaults, so cyclic garbage is still reclaimed.
GC_YOUNG_THRESHOLD = 50_000


def quiet_gc() -> None:
    """Freeze what start-up allocated and collect the young generation less often."""
    gc.collect()
    gc.freeze()
    _young, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


class BadParameter(ValueError):
    """A query parameter a client got wrong: answered 400 with this message."""


def json_response(body: Any, status: int = 200) -> Response:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return Response(raw, status, media_type=_JSON)


def _int_param(request: Request, name: str, low: int, high: int | None) -> int | None:
    """A query parameter as an int in [low, high], None when absent."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise BadParameter(f"{name}: an integer, got {raw!r}") from None
    if value < low or (high is not None and value > high):
        upper = "" if high is None else f" and {high}"
        raise BadParameter(f"{name}: between {low}{upper}, got {value}")
    return value


def redis_client(url: str, serve: ServeSettings) -> aioredis.Redis:
    """The process's one client: a blocking pool, bounded waits."""
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=serve.redis_connections,
        timeout=serve.redis_timeout_s,
        socket_connect_timeout=serve.redis_timeout_s,
    )
    return aioredis.Redis(connection_pool=pool)


class Handlers:
    """One method per route."""

    def __init__(
        self, reader: Reader, metrics: HttpMetrics, max_items: int, timeout_s: float
    ) -> None:
        self.reader, self.metrics, self.max_items = reader, metrics, max_items
        self.timeout_s = timeout_s
        self.openapi = orjson.dumps(document(max_items))

    async def bounded(self, work: Awaitable[T], scale: float = 1.0) -> T:
        """`work` (Redis calls), given at most `scale` x `timeout_s`: a stalled Redis is a 503."""
        limit = self.timeout_s * scale
        try:
            async with asyncio.timeout(limit):
                return await work
        except TimeoutError:
            raise RedisTimeoutError(f"no answer within {limit:g} s") from None

    async def recommendations(self, request: Request) -> Response:
        user_id = request.path_params.get("user_id")
        n = _int_param(request, "n", 1, self.max_items)
        category = request.query_params.get("category") or None
        found = await self.bounded(self.reader.recommendations(user_id, category))
        if found is None:
            return json_response({"error": "no list for this user and no fallback published"}, 404)
        return json_response(found.cut(n).as_json())

    async def user(self, request: Request) -> Response:
        user_id = request.path_params["user_id"]
        profile = await self.bounded(self.reader.profile(user_id))
        if profile is None:
            return json_response({"error": "no profile for this user"}, 404)
        return json_response({"user_id": user_id, "profile": profile})

    async def segments(self, _request: Request) -> Response:
        # a scan of every key, many round trips: SEGMENTS_SCALE times a request's bound
        return json_response(await self.bounded(self.reader.segments(), SEGMENTS_SCALE))

    async def members(self, request: Request) -> Response:
        segment = request.path_params["segment_id"]
        cursor = _int_param(request, "cursor", 0, None) or 0
        page = await self.bounded(self.reader.members(segment, cursor))
        if page is None:
            return json_response({"error": f"no segment {segment!r} with members"}, 404)
        members, following = page
        body = {"segment": segment, "members": members, "cursor": following or None}
        return json_response(body)

    async def healthz(self, _request: Request) -> Response:
        return json_response({"status": "ok"})

    async def readyz(self, _request: Request) -> Response:
        try:
            state = await self.bounded(self.reader.readiness())
        except (RedisConnectionError, RedisTimeoutError) as exc:
            state = {"ready": False, "redis": False, "error": type(exc).__name__}
        return json_response(state, 200 if state["ready"] else 503)

    async def metrics_text(self, _request: Request) -> Response:
        body, content_type = self.metrics.exposition()
        return Response(body, media_type=content_type)

    async def openapi_json(self, _request: Request) -> Response:
        return json_response(self.openapi)

    def routes(self) -> list[Route]:
        """The routes; a user's recommendations before the profile, whose id may hold a /."""
        return [
            Route("/v1/users/{user_id:path}/recommendations", self.recommendations),
            Route("/v1/recommendations", self.recommendations),
            Route("/v1/users/{user_id:path}", self.user),
            Route("/v1/segments", self.segments),
            Route("/v1/segments/{segment_id:path}/members", self.members),
            Route("/healthz", self.healthz),
            Route("/readyz", self.readyz),
            Route("/metrics", self.metrics_text),
            Route("/openapi.json", self.openapi_json),
        ]


async def _bad_parameter(_request: Request, exc: Exception) -> Response:
    return json_response({"error": str(exc)}, 400)


async def _unavailable(_request: Request, exc: Exception) -> Response:
    return json_response({"error": f"Redis cannot be reached ({type(exc).__name__})"}, 503)


def build_app(config: Settings, secret: bytes | None) -> HttpMetrics:
    """The whole app, metrics outermost; `secret` is the pseudonym key (None: raw ids)."""
    serve = config.serve
    client = redis_client(config.redis_url, serve)
    reader = Reader(
        client,
        config.prefix,
        secret,
        fallbacks=serve.fallbacks,
        page_size=serve.page_size,
        heartbeat_max_age_s=serve.heartbeat_max_age_s,
        segments_cache_s=serve.segments_cache_s,
    )
    metrics = HttpMetrics()
    handlers = Handlers(reader, metrics, serve.max_items, serve.redis_timeout_s)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        quiet_gc()
        yield
        await client.aclose()

    app = Starlette(
        routes=handlers.routes(),
        exception_handlers={
            BadParameter: _bad_parameter,
            RedisConnectionError: _unavailable,
            RedisTimeoutError: _unavailable,
        },
        lifespan=lifespan,
    )
    app.state.handlers = handlers  # where the settings went, for tests
    return metrics.wrapping(app)
