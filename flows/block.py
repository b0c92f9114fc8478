"""`tailor block ITEM [--unblock]`: never recommend an item again (or again recommend it).

Three places make a block hold at once and for good: the blocklist set in Redis (the record
of truth; the sink drops blocked items from every list it writes, so nothing written after
this command holds the item, whenever the worker hears of it), the control stream (the worker
stops proposing it, and a fresh worker reads the set back), and the lists already stored
(users' lists and the published lists for users without history), rewritten here without the
item. A rewrite only replaces the list it read (compare-and-set), so a newer list the worker
wrote meanwhile is never overwritten.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import orjson
import redis

from tailor.operators.redis.control import request_block
from tailor.operators.redis.keys import fallback_key, fallbacks_key, recs_key

__all__ = ["block", "without_item", "without_item_published"]

#: SET KEYS[1] to ARGV[2] only if it still holds ARGV[1].
_REPLACE_IF_SAME = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2])
  return 1
end
return 0
"""


def without_item(stored: bytes, item: str) -> bytes | None:
    """A stored recommendation list without `item`, in the sink's byte layout; None when the
    list does not hold it."""
    value = orjson.loads(stored)
    items = value.get("items", [])
    kept = [entry for entry in items if entry.get("item_id") != item]
    if len(kept) == len(items):
        return None
    body = orjson.dumps(kept, option=orjson.OPT_SORT_KEYS)
    return b'{"version":%d,"items":%s}' % (value["version"], body)


def without_item_published(stored: bytes, item: str) -> bytes | None:
    """A published list (`{"at", "items", "version"}`, keys sorted) without `item`, in the
    sink's byte layout; None when the list does not hold it."""
    value = orjson.loads(stored)
    items = value.get("items", [])
    kept = [entry for entry in items if entry.get("item_id") != item]
    if len(kept) == len(items):
        return None
    return orjson.dumps({**value, "items": kept}, option=orjson.OPT_SORT_KEYS)


def block(client: redis.Redis, prefix: str, item: str, blocked: bool = True) -> int:
    """Block (or unblock) `item`; returns how many stored lists were rewritten without it."""
    request_block(client, prefix, item, blocked)
    if not blocked:
        return 0
    users = client.scan_iter(match=recs_key(prefix, "*"), count=1000)
    names: Iterable[bytes] = client.hgetall(fallbacks_key(prefix))  # type: ignore[assignment]
    published = [fallback_key(prefix, name.decode()) for name in names]
    rewritten = _rewrite(client, users, lambda stored: without_item(stored, item))
    return rewritten + _rewrite(
        client, published, lambda stored: without_item_published(stored, item)
    )


def _rewrite(
    client: redis.Redis,
    keys: Iterable[bytes | str],
    without: Callable[[bytes], bytes | None],
) -> int:
    """Replace each stored list at `keys` by `without` of it, unless it changed meanwhile."""
    replace = client.register_script(_REPLACE_IF_SAME)
    rewritten = 0
    for key in keys:
        stored = client.get(key)
        if not isinstance(stored, bytes):
            continue
        new = without(stored)
        if new is not None:
            rewritten += int(replace(keys=[key], args=[stored, new]))
    return rewritten
