"""Shared builders and fixtures for the RedisSink tests (writes, and retries)."""

from __future__ import annotations

from typing import Any, cast

import orjson
import redis
from prometheus_client import REGISTRY

from tailor.operators.records import Recommendation, UserOutput
from tailor.operators.redis.keys import segment_key, updates_stream, user_key

PREFIX = "t"


def no_sleep(_seconds: float) -> None:
    """Retries in tests never wait."""


def output(
    user: str = "u1",
    version: int = 1,
    *,
    segment: str = "cluster:1",
    rfm: str = "",
    rules: tuple[str, ...] = (),
    recs: tuple[str, ...] = ("i1", "i2"),
    profile: dict[str, Any] | None = None,
    read_ats: tuple[float, ...] = (),
    event_times: tuple[float, ...] = (),
) -> UserOutput:
    return UserOutput(
        user_id=user,
        version=version,
        updated_at=1_700_000_000.0 + 600 * version,
        profile={"features": {"views": float(version)}, "device": "mobile"}
        if profile is None
        else profile,
        segment=segment,
        segment_name=f"name of {segment}",
        rule_segments=rules,
        rfm_segment=rfm,
        recs=tuple(
            Recommendation(item, 1.0 / (n + 1), "cooc", f"viewed with h{n}")
            for n, item in enumerate(recs)
        ),
        read_ats=read_ats,
        event_times=event_times,
    )


def hash_json(r: redis.Redis, key: str) -> dict[str, Any]:
    raw = cast(dict[bytes, bytes], r.hgetall(key))
    return {k.decode(): orjson.loads(v) for k, v in raw.items()}


def profile(r: redis.Redis, user: str) -> dict[str, Any]:
    return hash_json(r, user_key(PREFIX, user))


def notices(r: redis.Redis) -> list[dict[str, Any]]:
    entries = cast(list[tuple[bytes, dict[bytes, bytes]]], r.xrange(updates_stream(PREFIX)))
    return [orjson.loads(fields[b"notice"]) for _, fields in entries]


def members(r: redis.Redis, segment: str) -> set[str]:
    return {m.decode() for m in cast(set[bytes], r.smembers(segment_key(PREFIX, segment)))}


def sample(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


def state(r: redis.Redis) -> dict[bytes, Any]:
    """Every key except the notice stream (entry ids are wall-clock), as stored bytes."""
    found: dict[bytes, Any] = {}
    for key in r.scan_iter(match=f"{PREFIX}:*"):
        kind = r.type(key)
        if kind == b"hash":
            found[key] = r.hgetall(key)
        elif kind == b"set":
            found[key] = r.smembers(key)
        elif kind == b"string":
            found[key] = r.get(key)
    return found
