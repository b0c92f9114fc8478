"""What the sink sends Redis for each record: coalesced per batch, encoded byte-stable.

A batch may hold several outputs of one user; only the newest needs writing (`newest_per_user`),
and every value is JSON with sorted keys, so a replay writes the same bytes (`dumps`). The Lua
scripts that receive these arguments are in `tailor.operators.redis.scripts`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from tailor.operators.records import FallbackList, SegmentInfo, UserOutput
from tailor.operators.redis.scripts import RESERVED_FIELDS

__all__ = [
    "dumps",
    "fallback_items",
    "hash_fields",
    "newest_per_list",
    "newest_per_segment",
    "newest_per_user",
    "notice_head",
    "recs_items",
]

JSON_OPTS = orjson.OPT_SORT_KEYS | orjson.OPT_SERIALIZE_NUMPY


def newest_per_user(outputs: Iterable[UserOutput]) -> list[UserOutput]:
    """One output per user, the highest (version, aged_to) (the later one on a tie), in
    first-seen order; when that one is aged, the user's newest event output goes before it,
    as it alone carries the recommendations.

    Older outputs of the same user add nothing to Redis: the newest already reflects them.
    """
    newest: dict[str, UserOutput] = {}
    events: dict[str, UserOutput] = {}
    for out in outputs:
        current = newest.get(out.user_id)
        if current is None or (out.version, out.aged_to) >= (current.version, current.aged_to):
            newest[out.user_id] = out
        if not out.aged_to:
            events[out.user_id] = out  # outputs of one user come in version order
    kept: list[UserOutput] = []
    for user, out in newest.items():
        event = events.get(user)
        if out.aged_to and event is not None:
            kept.append(event)
        kept.append(out)
    return kept


def newest_per_segment(infos: Iterable[SegmentInfo]) -> list[SegmentInfo]:
    """One description per segment, the highest version."""
    newest: dict[str, SegmentInfo] = {}
    for info in infos:
        current = newest.get(info.segment)
        if current is None or info.version >= current.version:
            newest[info.segment] = info
    return list(newest.values())


def newest_per_list(lists: Iterable[FallbackList]) -> list[FallbackList]:
    """One published list per name, the highest version (the others are older states of it)."""
    newest: dict[tuple[str, str], FallbackList] = {}
    for found in lists:
        current = newest.get((found.kind, found.group))
        if current is None or found.version >= current.version:
            newest[(found.kind, found.group)] = found
    return list(newest.values())


def fallback_items(found: FallbackList) -> bytes:
    """A published list's items as JSON objects, one per line (the script drops blocked ones
    and joins the rest, byte for byte what `dumps` of the whole value would hold)."""
    return b"\n".join(dumps({"item_id": item, "score": score}) for item, score in found.items)


def dumps(value: Any) -> bytes:
    """Byte-stable JSON: sorted keys, so a replay writes the same bytes."""
    return orjson.dumps(value, option=JSON_OPTS)


def hash_fields(out: UserOutput) -> list[bytes | str]:
    """The profile hash as flat field/value pairs: reserved fields first, then the profile."""
    clash = sorted(set(RESERVED_FIELDS) & out.profile.keys())
    if clash:
        raise ValueError(f"profile of {out.user_id!r} uses reserved field names {clash}")
    rules = sorted(set(out.rule_segments))
    pairs: list[bytes | str] = [
        "version",
        dumps(out.version),
        "updated_at",
        dumps(out.updated_at),
        "segment",
        dumps(out.segment),
        "segment_name",
        dumps(out.segment_name),
        "rfm_segment",
        dumps(out.rfm_segment),
        "rule_segments",
        dumps(rules),
        "memberships",
        dumps(list(out.memberships)),
    ]
    if out.aged_to:
        pairs += ["aged_to", dumps(out.aged_to)]
    for name in sorted(out.profile):
        pairs += [name, dumps(out.profile[name])]
    return pairs


def notice_head(out: UserOutput) -> bytes:
    """The notice without its "changed" list, which only the script knows; an aged
    output's names its boundary (`aged_to`), part of the notice's identity."""
    rules = dumps(sorted(set(out.rule_segments)))
    head = b'{"user_id":%s,"version":%d,"segment":%s,"rule_segments":%s' % (
        dumps(out.user_id),
        out.version,
        dumps(out.segment),
        rules,
    )
    return head + b',"aged_to":%s' % dumps(out.aged_to) if out.aged_to else head


def recs_items(out: UserOutput) -> bytes:
    """The recommendations as JSON objects, one per line (the script drops blocked ones and
    joins the rest into the stored array, byte for byte what `dumps` of the list would be)."""
    return b"\n".join(
        dumps({"item_id": r.item_id, "score": r.score, "source": r.source, "reason": r.reason})
        for r in out.recs
    )
