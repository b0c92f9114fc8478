"""Segment ids are global: two Bytewax workers give every user the segments one worker gives.

Each worker holds a replica of the models (`operators.replicas`) that observes every
update, its own worker's and the other's. Two workers change the order in which updates reach
each replica, and online k-means depends on order; so the segment model learns in one
event-time order over the source partitions (`state.event_order`) and settles each user's
segments at their place in it. This checks the result is exact: the same model record (from
the first replica), and the same segments for every user (from the user's own replica).
"""

from __future__ import annotations

from pathlib import Path

import orjson
import redis

from flows.produce import produce
from flows.sample import write_jsonl
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


def run_with(redis_url: str, sample: Path, prefix: str, workers: int) -> dict[str, object]:
    produce(
        redis_url, sample, prefix=prefix, partitions=PARTITIONS, adapter="jsonl", progress=False
    )
    drain_worker(
        redis_url,
        prefix,
        PARTITIONS,
        recovery__enabled=False,
        cluster__workers_per_process=workers,
        # each worker ages its users by the clock of the partitions it reads (operators.aging)
        state__age_every_s=0.0,
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
    assert len(in_use) >= 3 and in_use <= set(two["segments"])  # type: ignore[arg-type]
    assert any(fields[3] for fields in users_two.values())  # the rule matched someone
    names = [s["name"] for s in two["segments"].values()]  # type: ignore[union-attr]
    assert len(set(names)) == len(names)
    # live recommendation quality: every interaction after a user's first output is scored
    quality = r.hgetall("two:quality:recs")
    record = orjson.loads(quality[b"record"])
    assert set(record) == {"all"} and record["all"]["model"] == "hybrid"
    assert int(quality[b"version"]) > 1000 and 0 < record["all"]["recall"] < 1
