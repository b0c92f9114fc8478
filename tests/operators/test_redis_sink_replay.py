"""RedisSink under replay: what Bytewax recovery sends again writes and announces nothing new.

After a crash the worker re-sends what it wrote after its last snapshot, cut into other
batches: a version's first output (provisional or settled at once) and its settled correction
may each arrive again. Each notice must be sent at most once, named by (user_id, version,
correction), and the channel and the stream must carry the same bytes.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import redis

from tailor.operators.records import UserOutput
from tailor.operators.redis.keys import updates_channel, updates_stream
from tailor.operators.redis.sink import _RedisSinkPartition
from tests.operators.sink_support import PREFIX, members, notices, output, profile, state


def settled(out: UserOutput) -> UserOutput:
    return dataclasses.replace(out, settled=True)


def notice_keys(r: redis.Redis) -> list[tuple[str, int, bool]]:
    return [(n["user_id"], n["version"], n["correction"]) for n in notices(r)]


def test_a_replayed_correction_writes_and_sends_nothing(
    sink: _RedisSinkPartition, r: redis.Redis
) -> None:
    provisional = output("u1", 5, segment="cluster:2", rules=("a",))
    correction = settled(output("u1", 5, segment="cluster:3", rules=("b",)))
    sink.write_batch([provisional])
    sink.write_batch([correction])
    before = state(r)
    assert notice_keys(r) == [("u1", 5, False), ("u1", 5, True)]
    sink.write_batch([provisional])  # the replay, in the batches it was first sent in
    sink.write_batch([correction])
    sink.write_batch([provisional, correction])  # and cut otherwise
    assert state(r) == before
    assert notice_keys(r) == [("u1", 5, False), ("u1", 5, True)]
    assert notices(r)[1]["changed"] == ["segment", "rule_segments"]


def test_an_output_settled_as_first_sent_needs_no_correction(
    sink: _RedisSinkPartition, r: redis.Redis
) -> None:
    first = settled(output("u1", 2, segment="cluster:1", recs=("i1",)))
    sink.write_batch([first])
    # replayed, or with recs that differ (a replay cut into other batches): same segments
    sink.write_batch([first, settled(output("u1", 2, segment="cluster:1", recs=("i9",)))])
    assert notice_keys(r) == [("u1", 2, False)]
    assert profile(r, "u1")["version"] == 2


def test_a_settled_output_replaces_a_provisional_one_the_killed_run_wrote(
    sink: _RedisSinkPartition, r: redis.Redis
) -> None:
    """The killed run sent version 5 provisional; the replay settles it at once, otherwise:
    no correction will follow, so this output must apply, announced as a correction."""
    sink.write_batch([output("u1", 5, segment="cluster:2")])
    sink.write_batch([settled(output("u1", 5, segment="cluster:3"))])
    assert profile(r, "u1")["segment"] == "cluster:3"
    assert members(r, "cluster:2") == set() and members(r, "cluster:3") == {"u1"}
    assert notice_keys(r) == [("u1", 5, False), ("u1", 5, True)]


def test_the_channel_and_the_stream_carry_the_same_notices(
    sink: _RedisSinkPartition, r: redis.Redis
) -> None:
    pubsub = r.pubsub()
    pubsub.subscribe(updates_channel(PREFIX))
    confirmation = pubsub.get_message(timeout=5)
    assert confirmation is not None and confirmation["type"] == "subscribe"
    provisional = output("u1", 1, segment="cluster:2")
    correction = settled(output("u1", 1, segment="cluster:4"))
    for batch in ([provisional, output("u2", 1)], [correction], [provisional, correction]):
        sink.write_batch(batch)
    published: list[Any] = []
    while (message := pubsub.get_message(timeout=1)) is not None:
        published.append(message["data"])
    pubsub.close()
    stored = [fields[b"notice"] for _, fields in r.xrange(updates_stream(PREFIX))]
    assert published == stored and len(stored) == 3


def test_the_readme_names_the_streams_one_field(sink: _RedisSinkPartition, r: redis.Redis) -> None:
    """Consumers read the contract, not the Lua script: its `updates` row must name the field
    every stream entry carries the notice in."""
    sink.write_batch([output("u1", 1)])
    [(_id, fields)] = r.xrange(updates_stream(PREFIX))
    assert list(fields) == [b"notice"]
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    row = next(line for line in readme.splitlines() if line.startswith("| `updates` |"))
    assert "each stream entry carries it in its one field, `notice`" in row, row
