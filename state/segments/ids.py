"""Segment ids: how a cluster, an RFM tier and a rule are named as segments.

One user belongs to up to one cluster segment, one RFM tier and any number of rule segments;
each is a set in Redis named by its id (`tailor.operators.redis.keys.segment_key`). The ids are
computed here, upstream of the sink, and written with the profile (its `memberships` field),
so the sink's scripts read back the ids they stored rather than deriving them again.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["membership_ids", "rfm_segment", "rule_segment"]


def rule_segment(name: str) -> str:
    """The segment id of a rule: profiles list bare rule names, memberships need ids."""
    return f"rule:{name}"


def rfm_segment(tier: str) -> str:
    """The segment id of an RFM tier (``champions`` → ``rfm:champions``)."""
    return f"rfm:{tier}"


def membership_ids(segment: str, rfm_tier: str, rules: Iterable[str]) -> tuple[str, ...]:
    """The segment ids a profile with these fields belongs to, in the order the sink writes
    them: the cluster segment and the RFM tier unless empty, then each rule, sorted.

    >>> membership_ids("cluster:2", "", ["b", "a", "b"])
    ('cluster:2', 'rule:a', 'rule:b')
    """
    ids = [segment] if segment else []
    if rfm_tier:
        ids.append(rfm_segment(rfm_tier))
    return (*ids, *(rule_segment(name) for name in sorted(set(rules))))
