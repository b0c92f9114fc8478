"""Removing a user's derived data from Redis: what the sink does with an `Erasure`.

One Lua script per user takes the user out of every segment set it is in (the ids its stored
profile's `memberships` field holds), deletes the profile and recommendations, and announces
the erasure on pub/sub only (a stream entry would itself be data about the user). Past notices
of the user are then deleted from the update stream. Key names come from
`tailor.operators.redis.keys`; the sets of the memberships are named in the script from a
segment key prefix and the stored profile's ids.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import orjson
import redis

from tailor.operators.records import InputDeletion
from tailor.operators.redis.keys import control_key, is_event_stream, updates_stream

SCAN_CHUNK = 1000

# KEYS: 1 user hash, 2 recs key. ARGV: 1 user id, 2 reason, 3 segment key prefix
# (`segment_key(prefix, "")`), 4 updates channel. The memberships are those the stored profile
# holds (its `memberships` field, written by `USER_SCRIPT`).
ERASE_SCRIPT = """
local user, reason, segment_prefix = ARGV[1], ARGV[2], ARGV[3]
local stored = redis.call('HGET', KEYS[1], 'memberships')
for _, id in ipairs(stored and cjson.decode(stored) or {}) do
  redis.call('SREM', segment_prefix .. id, user)
end
local removed = redis.call('DEL', KEYS[1], KEYS[2])
redis.call('PUBLISH', ARGV[4], cjson.encode({user_id = user, erased = true, reason = reason}))
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


class InputEraser:
    """What an erasure removes beyond the user's derived data: the user's past notices in the
    update stream, with `delete_requests` the user's control entries, and an opted-out
    user's raw input entries (`InputDeletion`).

    Built by the flow (`tailor.flows.worker.build_sinks`), which knows whether recovery keeps the
    requests (`tailor.operators.redis.control`); the sink runs it right after the batch's erasure
    scripts, in the same call: a request deleted before its erasure is written would be lost by a
    crash, and a notice written after the scan would outlive the erasure.
    """

    def __init__(self, prefix: str, delete_requests: bool = True) -> None:
        self.prefix = prefix
        self.delete_requests = delete_requests

    def entries(self, items: Iterable[object]) -> dict[str, list[str]]:
        """The entry ids to delete per event stream of the prefix, from the deletions.

        Deletions pointing anywhere else (a replayed file's name and line, another prefix's
        stream) are ignored: only input read from this prefix's streams is deleted.

        >>> items = [InputDeletion("t:events:1", "5-0"), InputDeletion("file:a.jsonl", "3")]
        >>> InputEraser("t").entries(items)
        {'t:events:1': ['5-0']}
        """
        doomed: dict[str, list[str]] = {}
        for item in items:
            if isinstance(item, InputDeletion) and is_event_stream(self.prefix, item.origin):
                doomed.setdefault(item.origin, []).append(item.offset)
        return doomed

    def delete_entries(self, client: redis.Redis, doomed: dict[str, list[str]]) -> None:
        """XDEL the entries: idempotent, so a retried batch or a recovery replay is harmless."""
        pipe = client.pipeline(transaction=False)
        for stream, entry_ids in doomed.items():
            pipe.xdel(stream, *entry_ids)
        pipe.execute()

    def forget(self, client: redis.Redis, user_ids: Iterable[str]) -> None:
        """Delete the notices about the users, then (`delete_requests`) their requests: an
        opt-out stays in the opt-out set."""
        gone = set(user_ids)
        delete_mentions(client, updates_stream(self.prefix), b"notice", gone)
        if self.delete_requests:
            delete_mentions(client, control_key(self.prefix), b"payload", gone)
