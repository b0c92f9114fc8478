"""RedisSink and aged outputs: writes ordered by (version, aged_to), recommendations kept.

An aged output (`tailor.operators.aging`) re-states a user's profile and segments as of a later
boundary with no new event: it keeps its version, must follow every output of that version
(a late settled correction of the event's output included), must never undo a newer event's
output, and leaves the stored recommendation list alone.
"""

from __future__ import annotations

import dataclasses

import orjson
import redis

from tailor.operators.records import UserOutput
from tailor.operators.redis.keys import recs_key
from tailor.operators.redis.sink import _RedisSinkPartition
from tests.operators.sink_support import PREFIX, members, notices, output, profile

DAY = 86400.0


def aged(out: UserOutput, at: float, rfm: str) -> UserOutput:
    features = {"views": -1.0, "recency_days": at / DAY}
    return dataclasses.replace(
        out,
        aged_to=at,
        updated_at=at,
        rfm_segment=rfm,
        profile={**out.profile, "features": features},
        recs=(),
        settled=True,
    )


def recs(r: redis.Redis, user: str) -> object:
    return orjson.loads(r.get(recs_key(PREFIX, user)) or b"null")


def test_an_aged_output_follows_its_version_and_keeps_the_recommendations(
    sink: _RedisSinkPartition, r: redis.Redis
) -> None:
    event = dataclasses.replace(output("u1", 3, rfm="champions"), settled=True)
    sink.write_batch([event])
    listed = recs(r, "u1")
    sink.write_batch([aged(event, 10 * DAY, "at_risk")])
    stored = profile(r, "u1")
    assert (stored["version"], stored["aged_to"], stored["rfm_segment"]) == (3, 10 * DAY, "at_risk")
    assert stored["features"]["recency_days"] == 10.0
    assert recs(r, "u1") == listed  # the list is as the event's output left it
    assert members(r, "rfm:at_risk") == {"u1"} and members(r, "rfm:champions") == set()
    last = notices(r)[-1]
    assert (last["version"], last["aged_to"], last["correction"]) == (3, 10 * DAY, False)
    assert "recs" not in last["changed"] and "rfm_segment" in last["changed"]


def test_older_ages_and_late_corrections_do_not_undo_an_aged_output(
    sink: _RedisSinkPartition, r: redis.Redis
) -> None:
    event = output("u1", 3, rfm="champions")  # provisional: a correction may follow
    sink.write_batch([event, aged(event, 10 * DAY, "at_risk")])
    written = len(notices(r))
    late = dataclasses.replace(event, rfm_segment="loyal", settled=True)
    sink.write_batch([late])  # the event's settled correction, after the aged output
    sink.write_batch([aged(event, 9 * DAY, "hibernating")])  # an older boundary, replayed
    sink.write_batch([aged(event, 10 * DAY, "at_risk")])  # the same one, replayed
    assert profile(r, "u1")["rfm_segment"] == "at_risk"
    assert len(notices(r)) == written
    sink.write_batch([aged(event, 11 * DAY, "lost")])
    assert profile(r, "u1")["rfm_segment"] == "lost"


def test_a_newer_event_replaces_an_aged_output_and_drops_its_boundary(
    sink: _RedisSinkPartition, r: redis.Redis
) -> None:
    event = dataclasses.replace(output("u1", 3, rfm="champions"), settled=True)
    sink.write_batch([aged(event, 10 * DAY, "at_risk")])
    newer = dataclasses.replace(output("u1", 4, rfm="champions", recs=("i9",)), settled=True)
    sink.write_batch([newer])
    stored = profile(r, "u1")
    assert (stored["version"], stored["rfm_segment"]) == (4, "champions")
    assert "aged_to" not in stored
    assert [item["item_id"] for item in recs(r, "u1")["items"]] == ["i9"]  # type: ignore[index]
    sink.write_batch([aged(event, 20 * DAY, "lost")])  # aged before the newer event: stale
    assert profile(r, "u1")["version"] == 4 and profile(r, "u1")["rfm_segment"] == "champions"


def test_a_batch_keeps_the_latest_of_an_event_and_its_aged_output(
    sink: _RedisSinkPartition, r: redis.Redis
) -> None:
    event = dataclasses.replace(output("u1", 3), settled=True)
    sink.write_batch([event, aged(event, 10 * DAY, "at_risk")])
    assert profile(r, "u1")["aged_to"] == 10 * DAY
    assert [item["item_id"] for item in recs(r, "u1")["items"]] == ["i1", "i2"]  # type: ignore[index]


def test_an_aged_output_that_changes_only_the_profile_is_written(
    sink: _RedisSinkPartition, r: redis.Redis
) -> None:
    """The sink writes what it is given (the outputs step decides which aged profiles go
    out): the profile moves, the notice says so, the segments and the list stay."""
    event = dataclasses.replace(output("u1", 3, rfm="champions"), settled=True)
    sink.write_batch([event])
    sink.write_batch([aged(event, 10 * DAY, "champions")])
    stored = profile(r, "u1")
    assert stored["aged_to"] == 10 * DAY and stored["rfm_segment"] == "champions"
    assert notices(r)[-1]["changed"] == ["profile"]
