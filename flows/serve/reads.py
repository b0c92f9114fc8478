"""What `tailor serve` reads from Redis, and how it answers from it.

Every key name is `tailor.operators.redis.keys`'s; profiles are decoded as `tailor inspect`
decodes them (`tailor.flows.lookup.decode_profile`) and segments read as `tailor segments`
reads them (`tailor.flows.segments_table.rows_from`). Ids in requests are the shop's own: with
`privacy.pseudonymize` they are hashed as the worker hashes them before any key is built.

Recommendations, in order: the user's own list (``{p}:recs:{id}``); else the first published
of `serve.fallbacks` (``segment`` is the list of the user's cluster segment, for a user with a
profile), flagged by its name (``"fallback": "trending"``). With ``category=c`` and a
published ``category:c`` list, the user's items that are in it come first, then that list's
others (``"category": "c"``); without such a list the category is ignored (``"category":
null``): an app always gets something to show.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import orjson
import redis.asyncio as aioredis

from tailor.flows.lookup import decode_profile, text
from tailor.flows.segments_table import (
    MODEL_RECORD,
    parse_infos,
    parse_model,
    rows_from,
    segment_sets,
)
from tailor.operators.pseudonym import id_mode, pseudonym
from tailor.operators.redis.heartbeat import heartbeat_ages
from tailor.operators.redis.keys import (
    META_IDS,
    fallback_key,
    fallback_name,
    heartbeat_key,
    meta_key,
    model_key,
    recs_key,
    segment_key,
    segments_key,
    user_key,
)

__all__ = ["Reader", "Recommendations"]

#: The profile field holding the user's cluster segment (JSON, ``""`` in the warm-up).
SEGMENT_FIELD = "segment"


@dataclass(frozen=True, slots=True)
class Recommendations:
    """One answer: the items, the list they came from, and which category applied."""

    user_id: str | None
    version: int | None
    fallback: str | None
    category: str | None
    items: list[dict[str, Any]]

    def cut(self, n: int | None) -> Recommendations:
        items = self.items if n is None else self.items[:n]
        return Recommendations(self.user_id, self.version, self.fallback, self.category, items)

    def as_json(self) -> bytes:
        return orjson.dumps(self)  # orjson writes dataclasses itself (asdict deep-copies)


def _list(raw: bytes | str | None) -> dict[str, Any] | None:
    """A stored list (a user's or a fallback), decoded; None when absent."""
    return orjson.loads(raw) if raw else None


def _prefer(own: list[dict[str, Any]], category: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The user's items that are in the category's list (their order), then its others.

    >>> own = [{"item_id": "a"}, {"item_id": "b"}]
    >>> [i["item_id"] for i in _prefer(own, [{"item_id": "c"}, {"item_id": "b"}])]
    ['b', 'c']
    """
    in_category = {item["item_id"] for item in category}
    first = [item for item in own if item["item_id"] in in_category]
    chosen = {item["item_id"] for item in first}
    return first + [item for item in category if item["item_id"] not in chosen]


class Reader:
    """Async reads under one prefix, on one client (one connection pool per process)."""

    def __init__(
        self,
        client: aioredis.Redis,
        prefix: str,
        secret: bytes | None,
        fallbacks: tuple[str, ...],
        page_size: int,
        heartbeat_max_age_s: float,
        segments_cache_s: float,
    ) -> None:
        self.client, self.prefix, self.secret = client, prefix, secret
        self.fallbacks, self.page_size = fallbacks, page_size
        self.heartbeat_max_age_s = heartbeat_max_age_s
        self.segments_cache_s = segments_cache_s
        self._segments: tuple[float, list[dict[str, Any]]] | None = None

    def stored_id(self, user_id: str) -> str:
        """The id the worker stores `user_id` under (its pseudonym when pseudonymous)."""
        return pseudonym(self.secret, user_id) if self.secret else user_id

    async def recommendations(
        self, user_id: str | None, category: str | None
    ) -> Recommendations | None:
        """The user's list, or a fallback; None when neither exists (nothing published)."""
        stored = self.stored_id(user_id) if user_id is not None else None
        if category:
            return await self._in_category(user_id, stored, category)
        own = _list(await self.client.get(recs_key(self.prefix, stored))) if stored else None
        return await self._answer(user_id, stored, own)

    async def _answer(
        self, user_id: str | None, stored: str | None, own: dict[str, Any] | None
    ) -> Recommendations | None:
        if own is not None:
            return Recommendations(user_id, own.get("version"), None, None, own["items"])
        found = await self._fallback(stored)
        if found is None:
            return None
        name, published = found
        return Recommendations(user_id, published.get("version"), name, None, published["items"])

    async def _in_category(
        self, user_id: str | None, stored: str | None, category: str
    ) -> Recommendations | None:
        name = fallback_name("category", category)
        pipe = self.client.pipeline(transaction=False)
        pipe.get(fallback_key(self.prefix, name))
        if stored:
            pipe.get(recs_key(self.prefix, stored))
        replies = await pipe.execute()
        listed, own = _list(replies[0]), _list(replies[1]) if stored else None
        if listed is None:
            return await self._answer(user_id, stored, own)
        items = _prefer(own["items"] if own else [], listed["items"])
        return Recommendations(user_id, listed.get("version"), name, category, items)

    async def _fallback(self, stored: str | None) -> tuple[str, dict[str, Any]] | None:
        """The first published list of the chain, by name."""
        segment = ""
        if stored and "segment" in self.fallbacks:
            raw = await self.client.hget(user_key(self.prefix, stored), SEGMENT_FIELD)
            segment = orjson.loads(raw) if raw else ""
        names = [
            fallback_name(kind, segment) for kind in self.fallbacks if kind != "segment" or segment
        ]
        if not names:
            return None
        values = await self.client.mget([fallback_key(self.prefix, name) for name in names])
        for name, raw in zip(names, values, strict=True):
            if raw:
                return name, orjson.loads(raw)
        return None

    async def profile(self, user_id: str) -> dict[str, Any] | None:
        """The decoded profile hash, None for a user without one."""
        raw = await self.client.hgetall(user_key(self.prefix, self.stored_id(user_id)))
        return decode_profile(raw) if raw else None

    async def segments(self) -> list[dict[str, Any]]:
        """`tailor segments --json`'s rows, kept `segments_cache_s` (it scans every set)."""
        now = time.monotonic()
        if self._segments is not None and now < self._segments[0]:
            return self._segments[1]
        model = parse_model(await self.client.hget(model_key(self.prefix), MODEL_RECORD))
        infos = parse_infos(await self.client.hgetall(segments_key(self.prefix)))
        rows = [asdict(row) for row in rows_from(model, infos, await self._sizes())]
        self._segments = (now + self.segments_cache_s, rows)
        return rows

    async def _sizes(self) -> dict[str, int]:
        head = segment_sets(self.prefix)
        keys = sorted([text(k) async for k in self.client.scan_iter(f"{head}*", count=1000)])
        pipe = self.client.pipeline(transaction=False)
        for key in keys:
            pipe.scard(key)
        return {
            key[len(head) :]: int(size)
            for key, size in zip(keys, await pipe.execute(), strict=True)
        }

    async def members(self, segment: str, cursor: int) -> tuple[list[str], int] | None:
        """One page of the segment's (stored) member ids and the next cursor (0: the last
        page); None for a segment with no set (sets never stay empty in Redis)."""
        key = segment_key(self.prefix, segment)
        following, members = await self.client.sscan(key, cursor, count=self.page_size)
        if cursor == 0 and following == 0 and not members:
            return None
        return [text(m) for m in members], int(following)

    async def readiness(self) -> dict[str, Any]:
        """Redis answers, every worker's heartbeat is young enough, ids are stored as this
        process names them. An unreachable Redis raises (the caller answers 503)."""
        pipe = self.client.pipeline(transaction=False)
        pipe.get(heartbeat_key(self.prefix, 0))
        pipe.hget(meta_key(self.prefix), META_IDS)
        first, recorded = await pipe.execute()
        beats = [first]
        workers = _workers(first)
        if workers > 1:
            keys = [heartbeat_key(self.prefix, w) for w in range(1, workers)]
            beats += await self.client.mget(keys)
        ages = heartbeat_ages(beats, time.time())
        mine = id_mode(self.secret)
        worker_ids = text(recorded) if recorded else None
        alive = all(age is not None and age <= self.heartbeat_max_age_s for age in ages)
        ids_match = worker_ids in (None, mine)
        return {
            "ready": alive and ids_match,
            "redis": True,
            "heartbeat_max_age_s": self.heartbeat_max_age_s,
            "workers": [
                {"worker": w, "heartbeat_age_s": None if age is None else round(age, 3)}
                for w, age in enumerate(ages)
            ],
            "ids": {"worker": worker_ids, "serve": mine, "match": ids_match},
        }


def _workers(beat: bytes | None) -> int:
    """How many workers the first beat says the run has (1 when it cannot tell)."""
    try:
        return max(1, int(orjson.loads(beat)["workers"])) if beat else 1
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return 1
