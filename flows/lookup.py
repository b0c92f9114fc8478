"""`tailor inspect USER`: read one user's profile and recommendations back from Redis.

`decode_profile` is also how `tailor serve` reads a profile."""

from __future__ import annotations

from typing import Any

import orjson
import redis

from tailor.operators.redis.keys import recs_key, user_key


def text(value: bytes | str) -> str:
    """Redis replies are bytes with this client; accept str too (decode_responses clients)."""
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def read_user(client: redis.Redis, prefix: str, user_id: str) -> dict[str, Any] | None:
    """The stored profile (JSON fields decoded) and recommendations, or None if unknown."""
    raw = client.hgetall(user_key(prefix, user_id))
    if not raw:
        return None
    recs = client.get(recs_key(prefix, user_id))
    return {
        "user_id": user_id,
        "profile": decode_profile(raw),
        "recommendations": orjson.loads(recs) if recs else None,
    }


def decode_profile(raw: dict[Any, Any]) -> dict[str, Any]:
    """A profile hash as read (`user_key`), each field's JSON decoded, fields sorted; a value
    that is not JSON is kept as text."""
    profile: dict[str, Any] = {}
    for field, value in sorted(raw.items()):
        name = text(field)
        try:
            profile[name] = orjson.loads(value)
        except orjson.JSONDecodeError:
            profile[name] = text(value)
    return profile


def render(found: dict[str, Any]) -> str:
    return orjson.dumps(found, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()
