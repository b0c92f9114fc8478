"""Stored data from an earlier release, brought up to the current key schema before a worker
reads anything.

Schema 2 stores each profile's segment ids in its `memberships` field, which the sink's
scripts read back to leave the right sets; profiles written by an earlier release lack it.
`upgrade` adds it to each such profile, computed from the profile's own segment fields by
the one definition (`tailor.state.segments.ids.membership_ids`), then records the schema in
``{p}:meta`` so later starts skip the scan. Safe to repeat and to run from several workers at
once: it only adds the field where it is missing. Stop the workers of the earlier release
first: one of them writing meanwhile could leave a profile without the field.
"""

from __future__ import annotations

from collections.abc import Iterator

import orjson
import redis

from tailor.operators.redis.keys import META_SCHEMA, meta_key, user_key
from tailor.state.segments.ids import membership_ids

__all__ = ["SCHEMA", "upgrade"]

#: The current schema of the stored data (`META_SCHEMA` in ``{p}:meta``).
SCHEMA = 2
_CHUNK = 500
_FIELDS = ("memberships", "segment", "rfm_segment", "rule_segments")


def upgrade(client: redis.Redis, prefix: str) -> int:
    """Bring the stored profiles to `SCHEMA`; the number of profiles changed."""
    stored = client.hget(meta_key(prefix), META_SCHEMA)
    if stored is not None and int(stored) >= SCHEMA:
        return 0
    changed = sum(_add_memberships(client, keys) for keys in _user_keys(client, prefix))
    client.hset(meta_key(prefix), META_SCHEMA, SCHEMA)
    return changed


def _user_keys(client: redis.Redis, prefix: str) -> Iterator[list[bytes]]:
    """The profile keys under the prefix, in chunks."""
    chunk: list[bytes] = []
    for key in client.scan_iter(match=user_key(prefix, "*"), count=_CHUNK, _type="hash"):
        chunk.append(key)
        if len(chunk) == _CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _add_memberships(client: redis.Redis, keys: list[bytes]) -> int:
    """Add `memberships` to each profile of `keys` that lacks it (HSETNX: never overwrite)."""
    read = client.pipeline(transaction=False)
    for key in keys:
        read.hmget(key, *_FIELDS)
    write = client.pipeline(transaction=False)
    count = 0
    for key, values in zip(keys, read.execute(), strict=True):
        memberships, segment, rfm, rules = values
        if memberships is not None or segment is None:
            continue
        ids = membership_ids(
            orjson.loads(segment), orjson.loads(rfm) if rfm else "", orjson.loads(rules or b"[]")
        )
        write.hsetnx(key, "memberships", orjson.dumps(list(ids)))
        count += 1
    write.execute()
    return count
