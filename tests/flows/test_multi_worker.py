"""Segment ids are global: two Bytewax workers give every user the segments one worker gives.

Each worker holds a replica of the models (`tailor.operators.replicas`) that observes every
update, its own worker's and the other's. Two workers change the order in which updates reach
each replica, and online k-means depends on order; so the segment model learns in one
event-time order over the source partitions (`tailor.state.segments.event_order`) and settles each
user's segments at their place in it. This checks the result is exact: the same model record (from
the first replica), and the same segments for every user (from the user's own replica).
"""

from __future__ import annotations

from pathlib import Path

import orjson
import redis

from tailor.flows.produce import produce
from tailor.flows.sample import write_jsonl
from tests.conftest import drain_worker

PARTITIONS = 4
#: Learn points of the sample with the default learn_every (10): users' 1st, 11th, ... events.


def learn_points(sample: Path, learn_every: int = 10) -> int:
    seen: dict[str, int] = {}
    count = 0
    for line in sample.read_bytes().splitlines():
        user = orjson.loads(line)["user_id"]
        seen[user] = seen.get(user, 0) + 1
        count += (seen[user] - 1) % learn_every == 0
    return count


SEGMENT_FIELDS = ("segment", "segment_name", "rfm_segment", "rule_segments")


def stored(r: redis.Redis, prefix: str) -> dict[str, tuple[object, ...]]:
    """Each user's segment fields as stored."""
    out = {}
    for key in r.scan_iter(match=f"{prefix}:user:*", count=1000):
        values = r.hmget(key, list(SEGMENT_FIELDS))
        user = key.decode().split(":user:")[1]
        out[user] = tuple(orjson.loads(v) if v else None for v in values)
    return out


def run_with(
    redis_url: str, sample: Path, prefix: str, workers: int, age_every_s: float = 0.0
) -> dict[str, object]:
    produce(
        redis_url, sample, prefix=prefix, partitions=PARTITIONS, adapter="jsonl", progress=False
    )
    drain_worker(
        redis_url,
        prefix,
        PARTITIONS,
        recovery__enabled=False,
        cluster__workers_per_process=workers,
        # each worker ages its users by the clock of the partitions it reads
        # (tailor.operators.aging): off here, where every stored field must match; on in the test of
        # aging below
        state__age_every_s=age_every_s,
        segments__publish_every=1,  # the last record describes the final model
        segments__rules={"big_spender": "spend_total > 100 and segment != ''"},
    )
    r = redis.Redis.from_url(redis_url)
    return orjson.loads(r.hget(f"{prefix}:segments:model", "record") or b"{}")


def test_two_workers_give_every_user_the_segments_one_worker_gives(
    redis_url: str, r: redis.Redis, tmp_path: Path
) -> None:
    sample = tmp_path / "sample.jsonl"
    write_jsonl(sample, users=400, seed=3, archetypes=True)
    one = run_with(redis_url, sample, "one", workers=1)
    two = run_with(redis_url, sample, "two", workers=2)
    # one model saw every learn point of both workers exactly once
    assert one["version"] == two["version"] == learn_points(sample)
    assert set(one["segments"]) == set(two["segments"])  # type: ignore[arg-type]
    assert one == two  # the same model: same centres, names, sizes, quality, RFM cut points
    users_one, users_two = stored(r, "one"), stored(r, "two")
    assert len(users_two) == 400
    assert users_one == users_two  # every user: same segment, name, RFM tier and rules
    in_use = {fields[0] for fields in users_two.values() if fields[0]}
    # a segment a re-fit retired keeps its users until their next update (aging is off here)
    known = {*two["segments"], *two["retired"]}  # type: ignore[misc]
    assert len(in_use) >= 3 and in_use <= known
    assert any(fields[3] for fields in users_two.values())  # the rule matched someone
    names = [s["name"] for s in two["segments"].values()]  # type: ignore[union-attr]
    assert len(set(names)) == len(names)
    # live recommendation quality: every interaction after a user's first output is scored
    quality = r.hgetall("two:quality:recs")
    record = orjson.loads(quality[b"record"])
    assert set(record) == {"all"} and record["all"]["model"] == "hybrid"
    assert int(quality[b"version"]) > 1000 and 0 < record["all"]["recall"] < 1


def test_two_workers_age_users_as_one_worker_does_to_the_same_boundary(
    redis_url: str, r: redis.Redis, tmp_path: Path
) -> None:
    """Aging learns nothing, so the model is the one a worker gives without aging; a user
    aged to the same boundary by one worker or two has the same segments there (aged
    profiles are placed at their boundary in the event-time order). Each worker's clock is
    the watermark of the partitions it reads, so at the end of a bounded replay a worker
    whose partitions end earlier has aged its users to fewer boundaries."""
    sample = tmp_path / "sample.jsonl"
    write_jsonl(sample, users=400, seed=3, archetypes=True)
    plain = run_with(redis_url, sample, "plain", workers=1)
    one = run_with(redis_url, sample, "one", workers=1, age_every_s=86400.0)
    two = run_with(redis_url, sample, "two", workers=2, age_every_s=86400.0)
    assert one == two == plain

    def aged(prefix: str) -> dict[str, tuple[object, ...]]:
        fields = ("aged_to", "version", *SEGMENT_FIELDS)
        out = {}
        for key in r.scan_iter(match=f"{prefix}:user:*", count=1000):
            values = r.hmget(key, list(fields))
            out[key.decode().split(":user:")[1]] = tuple(
                orjson.loads(v) if v else None for v in values
            )
        return out

    users_one, users_two = aged("one"), aged("two")
    assert users_one.keys() == users_two.keys() and len(users_one) == 400
    same_boundary = [u for u in users_one if users_one[u][0] == users_two[u][0]]
    assert (
        len(same_boundary) >= 150 and sum(users_one[u][0] is not None for u in same_boundary) >= 100
    )
    assert all(users_one[u] == users_two[u] for u in same_boundary)
    for user, (_at, version, *_segments) in users_two.items():
        assert version == users_one[user][1]  # no event invented or lost
