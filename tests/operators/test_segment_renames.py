"""A segment's name in every member's profile follows the segments table (`SEGMENT_SCRIPT`
renames members; `USER_SCRIPT` stores the table's name)."""

from __future__ import annotations

import redis

from tailor.operators.records import SegmentInfo
from tailor.operators.redis.keys import segment_key
from tailor.operators.redis.sink import _RedisSinkPartition
from tests.operators.sink_support import PREFIX, output, profile


def test_a_rename_reaches_every_members_profile(sink: _RedisSinkPartition, r: redis.Redis) -> None:
    """The profile and the segment table agree on a segment's name: a renamed segment's
    members get the new name in place, a user who moved on keeps theirs, and an older
    rename refused by the version guard renames nobody."""
    sink.write_batch([output("u1", 1), output("u2", 1), output("u3", 1, segment="cluster:2")])
    assert profile(r, "u1")["segment_name"] == "name of cluster:1"
    sink.write_batch([SegmentInfo("cluster:1", "big spenders", {"spend": 2.0}, 5)])
    assert [profile(r, u)["segment_name"] for u in ("u1", "u2", "u3")] == [
        "big spenders",
        "big spenders",
        "name of cluster:2",
    ]
    sink.write_batch([SegmentInfo("cluster:1", "older name", {"spend": 1.0}, 4)])
    assert profile(r, "u1")["segment_name"] == "big spenders"
    # a member whose stored segment is another (a set and hash out of step) is left alone
    r.sadd(segment_key(PREFIX, "cluster:1"), "u3")
    sink.write_batch([SegmentInfo("cluster:1", "new name", {"spend": 2.0}, 6)])
    assert profile(r, "u3")["segment_name"] == "name of cluster:2"
    assert profile(r, "u2")["segment_name"] == "new name"
    # an output drafted before the rename (it carries the old name) stores the table's
    sink.write_batch([output("u1", 2)])
    assert profile(r, "u1")["segment_name"] == "new name"
    assert profile(r, "u1")["version"] == 2
