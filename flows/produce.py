"""`tailor produce`: publish a dataset file to the partitioned Redis event streams.

Each payload goes to the stream of its user (`tailor.operators.redis.routing`), the same rule the
worker's partitions assume, so one partition sees all of a user's events in order. XADDs are sent in
non-transactional pipelines of `batch_size`: one round trip per batch, not per event.

Delivery is at-least-once: redis-py retries a whole pipeline after a connection error, so an
XADD can land twice; the worker drops duplicates by event id.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import orjson
import redis

from tailor.flows.progress_bar import ProgressBar
from tailor.operators.redis.keys import stream_key
from tailor.operators.redis.routing import partition_for
from tailor.operators.replay.adapters import checked_adapter, read_payloads

#: Adapters whose output is one event per data line after a one-line header.
_ONE_PER_LINE_AFTER_HEADER = frozenset({"csv", "movielens", "cdnow"})


def route(payload: bytes, partitions: int, workers: int = 1) -> int:
    """The partition of a payload's user (`partition_for`, for `workers` workers); 0 when
    there is none, so the worker dead-letters it.

    >>> route(b'{"user_id": "u1"}', 4), route(b'{"user_id": 7}', 4) == route(b'{"user_id": "7"}', 4)
    (2, True)
    >>> route(b"not json", 4), route(b'{"user_id": true}', 4)
    (0, 0)
    """
    try:
        obj: Any = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return 0
    user = obj.get("user_id") if isinstance(obj, dict) else None
    if isinstance(user, bool) or not isinstance(user, str | int):
        return 0
    return partition_for(str(user), partitions, workers)


def expected_total(path: Path, adapter: str) -> int | None:
    """The number of events a file will give, when a line count says it (for the ETA)."""
    if adapter == "otto" and path.suffix == ".csv":
        adapter = "csv"
    if adapter not in _ONE_PER_LINE_AFTER_HEADER and adapter != "jsonl":
        return None
    with path.open("rb") as fh:
        lines = sum(1 for line in fh if line.strip())
    return lines if adapter == "jsonl" else max(0, lines - 1)


def produce(
    redis_url: str,
    path: Path,
    prefix: str = "tailor",
    partitions: int = 4,
    adapter: str | None = None,
    batch_size: int = 1000,
    progress: bool = True,
    maxlen: int | None = None,
    limit: int | None = None,
    workers: int = 1,
) -> int:
    """Publish the payloads of `path` (the first `limit`, when given); returns how many.

    `workers`: the worker count the streams are read with (`Config.workers`), so that each
    user's events land in a partition their own worker reads (`partition_for`).

    `maxlen` caps each stream approximately (XADD MAXLEN ~), for long-running demos. A file
    the adapter cannot read raises `AdapterError` before anything is published.
    """
    if partitions < 1 or batch_size < 1:
        raise ValueError("partitions and batch_size must be at least 1")
    name = checked_adapter(path, adapter)
    keys = [stream_key(prefix, p) for p in range(partitions)]
    client = redis.Redis.from_url(redis_url, decode_responses=False)
    published = 0
    try:
        pipe = client.pipeline(transaction=False)
        total = expected_total(path, name)
        if limit is not None:
            total = limit if total is None else min(total, limit)
        with ProgressBar(f"produce {path.name}", total, enabled=progress) as bar:
            for payload in itertools.islice(read_payloads(path, name), limit):
                fields: dict[Any, Any] = {b"payload": payload}
                key = keys[route(payload, partitions, workers)]
                pipe.xadd(key, fields, maxlen=maxlen, approximate=True)
                published += 1
                if published % batch_size == 0:
                    pipe.execute()
                    bar.update(published)
            pipe.execute()
            bar.update(published)
    finally:
        client.close()
    return published
