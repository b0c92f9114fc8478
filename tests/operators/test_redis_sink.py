"""RedisSink against a real Redis: coalescing, version guard, memberships, notices, retries."""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import Callable
from itertools import islice
from pathlib import Path

import bytewax.operators as op
import orjson
import pytest
import redis
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSource, run_main
from prometheus_client import CollectorRegistry, Histogram

from tailor.operators.records import QualityReport, SegmentInfo, UserOutput
from tailor.operators.redis.keys import (
    model_key,
    recs_key,
    segment_key,
    segments_key,
    updates_channel,
    updates_stream,
    user_key,
)
from tailor.operators.redis.sink import RedisSink, SinkItem, _RedisSinkPartition, observe_many
from tests.operators.sink_support import (
    PREFIX,
    hash_json,
    members,
    no_sleep,
    notices,
    output,
    profile,
    sample,
    state,
)


def test_batch_is_coalesced_to_one_write_and_one_notice_per_user(
    sink: _RedisSinkPartition, r: redis.Redis
) -> None:
    r.config_resetstat()
    sink.write_batch([output("u1", 1), output("u1", 3), output("u1", 2), output("u2", 1)])
    stats = r.info("commandstats")
    assert stats["cmdstat_evalsha"]["calls"] == 2  # one script call per user
    assert stats["cmdstat_hset"]["calls"] == 2  # a profile per user, nothing else
    assert profile(r, "u1")["version"] == 3
    assert profile(r, "u1")["features"] == {"views": 3.0}
    assert [(n["user_id"], n["version"]) for n in notices(r)] == [("u1", 3), ("u2", 1)]


def test_profile_hash_layout_is_json_with_event_time(
    sink: _RedisSinkPartition, r: redis.Redis
) -> None:
    sink.write_batch([output("u1", 4, rules=("window_shopper", "big_spender"))])
    raw = r.hgetall(user_key(PREFIX, "u1"))
    assert raw == {
        b"version": b"4",
        b"updated_at": b"1700002400.0",
        b"segment": b'"cluster:1"',
        b"segment_name": b'"name of cluster:1"',
        b"rfm_segment": b'""',
        b"rule_segments": b'["big_spender","window_shopper"]',
        b"memberships": b'["cluster:1","rule:big_spender","rule:window_shopper"]',
        b"features": b'{"views":4.0}',
        b"device": b'"mobile"',
    }


def test_older_version_never_overwrites_and_replay_is_byte_identical(
    sink: _RedisSinkPartition, r: redis.Redis
) -> None:
    newest = output("u1", 5, segment="cluster:2", rules=("big_spender",), recs=("a", "b"))
    sink.write_batch([newest])
    before = state(r)
    sink.write_batch([output("u1", 3, segment="cluster:9", rules=("other",), recs=("z",))])
    sink.write_batch([newest])  # the same write replayed after a restart
    assert state(r) == before
    assert profile(r, "u1")["version"] == 5
    assert members(r, "cluster:9") == set()
    assert len(notices(r)) == 1


def test_a_settled_correction_replaces_its_own_version_only(
    sink: _RedisSinkPartition, r: redis.Redis
) -> None:
    first = output("u1", 5, segment="cluster:2", rules=("a",))
    sink.write_batch([first])
    same_again = output("u1", 5, segment="cluster:3")  # not a correction: a replay, ignored
    sink.write_batch([same_again])
    assert profile(r, "u1")["segment"] == "cluster:2"
    corrected = dataclasses.replace(
        output("u1", 5, segment="cluster:3", rules=("b",)), settled=True
    )
    sink.write_batch([corrected])
    assert profile(r, "u1")["segment"] == "cluster:3" and profile(r, "u1")["version"] == 5
    assert members(r, "cluster:2") == set() and members(r, "cluster:3") == {"u1"}
    assert members(r, "rule:b") == {"u1"} and members(r, "rule:a") == set()
    assert notices(r)[-1]["changed"] == ["segment", "rule_segments"]
    sink.write_batch([output("u1", 6, segment="cluster:3")])
    stale = dataclasses.replace(output("u1", 5, segment="cluster:9"), settled=True)
    sink.write_batch([stale])  # a correction of a version already superseded
    assert profile(r, "u1")["version"] == 6 and members(r, "cluster:9") == set()
    # in one batch, the correction wins over the output it corrects
    sink.write_batch([output("u2", 1, segment="cluster:1"), corrected_for("u2")])
    assert profile(r, "u2")["segment"] == "cluster:4"


def test_quality_reports_go_to_their_hash_newest_wins(
    sink: _RedisSinkPartition, r: redis.Redis
) -> None:
    good = {"all": {"model": "hybrid", "recall": 0.5, "ndcg": 0.3, "mrr": 0.25, "n": 4}}
    older = {"all": {"model": "hybrid", "recall": 0.1, "ndcg": 0.1, "mrr": 0.1, "n": 2}}
    sink.write_batch([QualityReport(4, good), QualityReport(2, older)])  # type: ignore[arg-type]
    sink.write_batch([QualityReport(3, older)])  # type: ignore[arg-type]
    stored = r.hgetall(f"{PREFIX}:quality:recs")
    assert int(stored[b"version"]) == 4 and orjson.loads(stored[b"record"]) == good


def test_blocked_items_never_reach_a_stored_list(sink: _RedisSinkPartition, r: redis.Redis) -> None:
    r.sadd(f"{PREFIX}:blocklist", "m1")
    sink.write_batch([output("u1", 7, recs=("m9", "m1", "m5"))])
    stored = orjson.loads(r.get(recs_key(PREFIX, "u1")) or b"")
    assert [i["item_id"] for i in stored["items"]] == ["m9", "m5"]


def corrected_for(user: str) -> UserOutput:
    return dataclasses.replace(output(user, 1, segment="cluster:4"), settled=True)


def test_user_moves_between_cluster_and_rule_segments(
    sink: _RedisSinkPartition, r: redis.Redis
) -> None:
    sink.write_batch([output("u1", 1, segment="cluster:1", rules=("a", "b")), output("u2", 1)])
    assert members(r, "cluster:1") == {"u1", "u2"}
    assert members(r, "rule:a") == members(r, "rule:b") == {"u1"}
    sink.write_batch([output("u1", 2, segment="cluster:2", rules=("b", "c"))])
    assert members(r, "cluster:1") == {"u2"}
    assert members(r, "cluster:2") == {"u1"}
    assert not r.exists(segment_key(PREFIX, "rule:a"))
    assert members(r, "rule:b") == members(r, "rule:c") == {"u1"}
    assert sample("tailor_segment_users", {"segment": "cluster:1"}) == 1
    assert sample("tailor_segment_users", {"segment": "rule:a"}) == 0
    assert sample("tailor_segment_users", {"segment": "rule:c"}) == 1
    last = notices(r)[-1]
    assert last == {
        "user_id": "u1",
        "version": 2,
        "segment": "cluster:2",
        "rule_segments": ["b", "c"],
        "changed": ["profile", "segment", "rule_segments"],
        "correction": False,
    }


def test_rfm_tiers_are_segments_too_and_the_profile_stores_its_memberships(
    sink: _RedisSinkPartition, r: redis.Redis
) -> None:
    sink.write_batch([output("u1", 1, rfm="new_customers"), output("u2", 1, segment="")])
    assert members(r, "rfm:new_customers") == {"u1"}
    assert members(r, "cluster:1") == {"u1"}  # u2 is in the warm-up: no cluster yet
    sink.write_batch([output("u1", 2, segment="cluster:2", rfm="champions")])
    sink.write_batch([output("u2", 2, segment="cluster:1")])
    sink.write_batch([output("u1", 7, segment="cluster:1", rfm="champions")])
    assert members(r, "rfm:new_customers") == set()
    assert members(r, "rfm:champions") == {"u1"}
    assert notices(r)[2]["changed"] == ["profile", "segment", "rfm_segment"]
    assert profile(r, "u1")["memberships"] == ["cluster:1", "rfm:champions"]
    assert profile(r, "u2")["memberships"] == ["cluster:1"]
    assert sample("tailor_segment_users", {"segment": "cluster:1"}) == 2
    assert sample("tailor_segment_users", {"segment": "rfm:new_customers"}) == 0
    assert not r.exists(model_key(PREFIX))  # the user script writes no model field


def test_changed_lists_only_what_differs_and_dropped_profile_fields_go(
    sink: _RedisSinkPartition, r: redis.Redis
) -> None:
    same = {"features": {"views": 1.0}, "device": "mobile"}
    sink.write_batch([output("u1", 1, profile=same)])
    sink.write_batch([output("u1", 2, profile=same)])
    sink.write_batch([output("u1", 3, profile=same, recs=("i9",))])
    sink.write_batch([output("u1", 4, profile={"features": {"views": 1.0}}, recs=("i9",))])
    assert [n["changed"] for n in notices(r)][1:] == [[], ["recs"], ["profile"]]
    assert "device" not in profile(r, "u1")


def test_recs_keep_their_order(sink: _RedisSinkPartition, r: redis.Redis) -> None:
    sink.write_batch([output("u1", 7, recs=("m9", "m1", "m5"))])
    stored = orjson.loads(r.get(recs_key(PREFIX, "u1")) or b"")
    assert stored == {
        "version": 7,
        "items": [
            {"item_id": "m9", "score": 1.0, "source": "cooc", "reason": "viewed with h0"},
            {"item_id": "m1", "score": 0.5, "source": "cooc", "reason": "viewed with h1"},
            {"item_id": "m5", "score": 1 / 3, "source": "cooc", "reason": "viewed with h2"},
        ],
    }


def test_notice_is_published(sink: _RedisSinkPartition, r: redis.Redis) -> None:
    pubsub = r.pubsub()
    pubsub.subscribe(updates_channel(PREFIX))
    confirmation = pubsub.get_message(timeout=5)
    assert confirmation is not None and confirmation["type"] == "subscribe"
    sink.write_batch([output("u1", 1, segment="cluster:4", rules=("x",))])
    message = pubsub.get_message(timeout=5)
    pubsub.close()
    assert message is not None and message["type"] == "message"
    assert orjson.loads(message["data"]) == {
        "user_id": "u1",
        "version": 1,
        "segment": "cluster:4",
        "rule_segments": ["x"],
        "changed": ["profile", "segment", "rule_segments", "recs"],
        "correction": False,
    }


def test_updates_stream_is_capped(
    make_partition: Callable[..., _RedisSinkPartition], r: redis.Redis
) -> None:
    part = make_partition(updates_maxlen=10)
    for start in range(0, 600, 50):
        part.write_batch([output(f"u{n}", 1) for n in range(start, start + 50)])
    length = r.xlen(updates_stream(PREFIX))
    assert 10 <= length <= 110  # "~" trims whole stream nodes (100 entries by default)
    assert notices(r)[-1]["user_id"] == "u599"


def test_segment_info_goes_to_the_segments_hash_newest_wins(
    sink: _RedisSinkPartition, r: redis.Redis
) -> None:
    info = SegmentInfo("cluster:0", "high spend", {"spend": 2.5}, 3, changed_at=1_700_000_000.0)
    sink.write_batch([info, output("u1", 1)])
    sink.write_batch(
        [
            SegmentInfo("cluster:0", "stale", {"spend": 0.0}, 2),
            SegmentInfo("cluster:1", "low views", {"views": -1.0}, 1),
            SegmentInfo("cluster:1", "low views v2", {"views": -1.5}, 2),
        ]
    )
    assert hash_json(r, segments_key(PREFIX)) == {
        "cluster:0": {
            "name": "high spend",
            "centroid": {"spend": 2.5},
            "version": 3,
            "changed_at": 1_700_000_000.0,
        },
        "cluster:1": {
            "name": "low views v2",
            "centroid": {"views": -1.5},
            "version": 2,
            "changed_at": 0.0,
        },
    }


def test_latency_is_observed_once_per_event(sink: _RedisSinkPartition) -> None:
    before = {
        name: sample(name)
        for name in (
            "tailor_event_to_redis_seconds_count",
            "tailor_event_time_to_redis_seconds_count",
            "tailor_sink_batch_users_count",
            "tailor_sink_batch_users_sum",
        )
    }
    sink.write_batch(
        [
            output("u1", 1, read_ats=(1.0, 2.0), event_times=(1.0, 2.0)),
            output("u1", 2, read_ats=(3.0,), event_times=(3.0,)),
            output("u2", 1, read_ats=(4.0, 5.0, 6.0), event_times=(4.0,)),
        ]
    )
    assert (
        sample("tailor_event_to_redis_seconds_count")
        - before["tailor_event_to_redis_seconds_count"]
        == 6
    )
    assert (
        sample("tailor_event_time_to_redis_seconds_count")
        - before["tailor_event_time_to_redis_seconds_count"]
        == 4
    )
    assert sample("tailor_sink_batch_users_count") - before["tailor_sink_batch_users_count"] == 1
    assert sample("tailor_sink_batch_users_sum") - before["tailor_sink_batch_users_sum"] == 2


def test_reserved_profile_names_are_refused(sink: _RedisSinkPartition, r: redis.Redis) -> None:
    with pytest.raises(ValueError, match="reserved"):
        sink.write_batch([output("u1", 1, profile={"version": 99})])
    assert not r.exists(user_key(PREFIX, "u1"))


def movielens_outputs(data_dir: Path, rows: int) -> list[UserOutput]:
    """One output per rating, like the models step: version counts the user's ratings."""
    outputs: list[UserOutput] = []
    seen: dict[str, list[str]] = {}
    with (data_dir / "movielens-latest-small" / "ratings.csv").open() as handle:
        for row in islice(csv.DictReader(handle), rows):
            history = seen.setdefault(row["userId"], [])
            history.append(row["movieId"])
            rating = float(row["rating"])
            outputs.append(
                output(
                    row["userId"],
                    len(history),
                    segment=f"cluster:{int(rating)}",
                    rules=("high_rater",) if rating >= 4.5 else (),
                    recs=tuple(reversed(history[-5:])),
                    profile={"features": {"ratings": float(len(history)), "last": rating}},
                )
            )
    return outputs


def test_replayed_batches_converge_to_the_same_bytes(
    data_dir: Path, sink: _RedisSinkPartition, r: redis.Redis
) -> None:
    """At-least-once: re-sending any earlier batches (a recovery replay) changes nothing."""
    outputs = movielens_outputs(data_dir, 3000)
    batches: list[list[SinkItem]] = [
        list(outputs[i : i + 250]) for i in range(0, len(outputs), 250)
    ]
    for batch in batches:
        sink.write_batch(batch)
    expected = state(r)
    assert len({o.user_id for o in outputs}) >= 10
    r.flushall()
    for batch in batches[:8] + batches[3:] + batches[::-1]:
        sink.write_batch(batch)
    assert state(r) == expected
    user_sets = [k for k in expected if k.startswith(f"{PREFIX}:segment:cluster:".encode())]
    assert sum(len(expected[k]) for k in user_sets) == len({o.user_id for o in outputs})


def test_through_a_bytewax_flow(redis_url: str, r: redis.Redis) -> None:
    items: list[UserOutput | SegmentInfo] = [
        output("u1", 1),
        output("u2", 1, segment="cluster:2"),
        output("u1", 2, segment="cluster:2", rules=("vip",)),
        SegmentInfo("cluster:2", "mobile", {"views": 1.0}, 1),
    ]
    flow = Dataflow("sink_test")
    source: TestingSource[UserOutput | SegmentInfo] = TestingSource(items, batch_size=2)
    stream = op.input("in", flow, source)
    op.output("redis", stream, RedisSink(redis_url, prefix=PREFIX, sleep=no_sleep))
    run_main(flow)
    assert profile(r, "u1")["version"] == 2
    assert members(r, "cluster:2") == {"u1", "u2"}
    assert members(r, "cluster:1") == set()
    assert members(r, "rule:vip") == {"u1"}
    assert r.hexists(segments_key(PREFIX), "cluster:2")


def test_observe_many_fills_the_buckets_as_observe_does() -> None:
    values = [0.0, 0.001, 0.0011, 0.3, 0.3, 2.5, 7.0, 1e9, -1.0, float("nan")]
    buckets = (0.001, 0.01, 0.5, 2.5, 10.0)
    one_by_one, many = CollectorRegistry(), CollectorRegistry()
    expected = Histogram("lat", "x", buckets=buckets, registry=one_by_one)
    for value in values[:-1]:
        expected.observe(value)
    observe_many(Histogram("lat", "x", buckets=buckets, registry=many), values[:-1])

    def samples(registry: CollectorRegistry) -> dict[str, float]:
        return {
            f"{s.name}{s.labels}": s.value
            for metric in registry.collect()
            for s in metric.samples
            if not s.name.endswith("_created")
        }

    got, want = samples(many), samples(one_by_one)
    assert got == pytest.approx(want)
    assert want["lat_bucket{'le': '0.001'}"] == 3.0 and want["lat_count{}"] == 9.0
    nan = Histogram("nan", "x", buckets=buckets, registry=CollectorRegistry())
    observe_many(nan, [float("nan"), 0.5])  # like observe: NaN lands in no bucket
    assert [b.get() for b in nan._buckets] == [0, 0, 1, 0, 0, 0]
