"""Removing a user's derived data from Redis: what the sink does with an `Erasure`.

One Lua script per user takes the user out of every segment set it is in (read from its own
profile), deletes the profile and recommendations, and announces the erasure on pub/sub only
(a stream entry would itself be data about the user). Past notices of the user are then
deleted from the update stream. Like the other scripts, it builds keys from the prefix:
single-instance Redis, not Redis Cluster.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import orjson
import redis

SCAN_CHUNK = 1000

ERASE_SCRIPT = """
local prefix, user, reason = ARGV[1], ARGV[2], ARGV[3]
local segment = redis.call('HGET', KEYS[1], 'segment')
if segment then
  redis.call('SREM', prefix .. ':segment:' .. cjson.decode(segment), user)
end
local tier = redis.call('HGET', KEYS[1], 'rfm_segment')
if tier and cjson.decode(tier) ~= '' then
  redis.call('SREM', prefix .. ':segment:rfm:' .. cjson.decode(tier), user)
end
local rules = redis.call('HGET', KEYS[1], 'rule_segments')
if rules then
  for _, name in ipairs(cjson.decode(rules)) do
    redis.call('SREM', prefix .. ':segment:rule:' .. name, user)
  end
end
local removed = redis.call('DEL', KEYS[1], KEYS[2])
redis.call('PUBLISH', prefix .. ':updates',
  cjson.encode({user_id = user, erased = true, reason = reason}))
return removed
"""


def stream_entries(client: redis.Redis, stream: str, field: bytes) -> Iterator[tuple[bytes, bytes]]:
    """(entry id, value of `field`) for every entry, in chunks, oldest first."""
    start = b"-"
    while True:
        chunk: Any = client.xrange(stream, min=start, count=SCAN_CHUNK)
        if not chunk:
            return
        for entry_id, fields in chunk:
            yield entry_id, fields.get(field, b"")
        start = b"(" + chunk[-1][0]  # exclusive: continue after the last entry seen


def mentions(payload: bytes, user_ids: Iterable[str]) -> bool:
    """The JSON payload's `user_id` is one of `user_ids` (unparseable: match the raw bytes)."""
    ids = set(user_ids)
    try:
        obj = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return any(user.encode() in payload for user in ids)
    return isinstance(obj, dict) and str(obj.get("user_id")) in ids


def delete_mentions(client: redis.Redis, stream: str, field: bytes, user_ids: Iterable[str]) -> int:
    """Delete the entries of `stream` whose `field` is about one of `user_ids`; the count."""
    ids = list(user_ids)
    doomed = [eid for eid, value in stream_entries(client, stream, field) if mentions(value, ids)]
    for start in range(0, len(doomed), SCAN_CHUNK):
        client.xdel(stream, *doomed[start : start + SCAN_CHUNK])
    return len(doomed)
