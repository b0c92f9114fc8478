"""Removing a user's derived data from Redis: what the sink does with an `Erasure`.

One Lua script per user takes the user out of every segment set it is in (read from its own
profile), deletes the profile and recommendations, and announces the erasure on pub/sub only
(a stream entry would itself be data about the user). Past notices of the user are then
deleted from the update stream. Key names come from `operators.keys`; the sets of the
memberships are named in the script from a segment key prefix and the stored profile's ids.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import orjson
import redis

from operators.sink_scripts import STORED_MEMBERSHIPS

SCAN_CHUNK = 1000

# KEYS: 1 user hash, 2 recs key. ARGV: 1 user id, 2 reason, 3 segment key prefix
# (`segment_key(prefix, "")`), 4 updates channel. The memberships are those the stored profile
# holds (`STORED_MEMBERSHIPS`, the twin of `operators.keys.membership_ids`).
ERASE_SCRIPT = (
    STORED_MEMBERSHIPS
    + """
local user, reason, segment_prefix = ARGV[1], ARGV[2], ARGV[3]
local flat = redis.call('HGETALL', KEYS[1])
local fields = {}
for i = 1, #flat, 2 do fields[flat[i]] = flat[i + 1] end
for _, id in ipairs(stored_memberships(fields)) do
  redis.call('SREM', segment_prefix .. id, user)
end
local removed = redis.call('DEL', KEYS[1], KEYS[2])
redis.call('PUBLISH', ARGV[4], cjson.encode({user_id = user, erased = true, reason = reason}))
return removed
"""
)


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
