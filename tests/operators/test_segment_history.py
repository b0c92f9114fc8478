"""Each published segment model appends the segments' sizes to the history stream, which
`tailor segments --plot` draws; a refused (older) model appends nothing."""

from __future__ import annotations

import orjson
import redis

from tailor.operators.records import SegmentModel
from tailor.operators.redis.keys import segment_history_key
from tailor.operators.redis.sink import _RedisSinkPartition
from tests.operators.sink_support import PREFIX, output


def test_a_published_model_records_the_sizes_at_its_event_time(
    sink: _RedisSinkPartition, r: redis.Redis
) -> None:
    sink.write_batch([output("u1", 1), output("u2", 1), output("u3", 1, segment="cluster:2")])
    segments = {"cluster:1": {}, "cluster:2": {}}  # the model names its segments
    model = {"updated_at": 1_700_000_000.0, "segments": segments}
    sink.write_batch([SegmentModel(10, model)])
    sink.write_batch([output("u2", 2, segment="cluster:2")])
    sink.write_batch([SegmentModel(20, {**model, "updated_at": 1_700_003_600.0})])
    sink.write_batch([SegmentModel(15, {**model, "updated_at": 1_700_001_800.0})])  # refused
    entries = [fields for _id, fields in r.xrange(segment_history_key(PREFIX))]
    assert [(e[b"version"], e[b"at"]) for e in entries] == [
        (b"10", b"1700000000.0"),
        (b"20", b"1700003600.0"),
    ]
    assert orjson.loads(entries[0][b"sizes"]) == {"cluster:1": 2, "cluster:2": 1}
    assert orjson.loads(entries[1][b"sizes"]) == {"cluster:1": 1, "cluster:2": 2}


def test_a_retired_segment_is_in_the_history_and_other_sets_are_not(
    sink: _RedisSinkPartition, r: redis.Redis
) -> None:
    sink.write_batch([output("u1", 1, rfm="champions"), output("u2", 1, segment="cluster:3")])
    record = {"updated_at": 1.0, "segments": {"cluster:1": {}}, "retired": ["cluster:3"]}
    sink.write_batch([SegmentModel(1, record)])
    (entry,) = [fields for _id, fields in r.xrange(segment_history_key(PREFIX))]
    assert orjson.loads(entry[b"sizes"]) == {"cluster:1": 1, "cluster:3": 1}
