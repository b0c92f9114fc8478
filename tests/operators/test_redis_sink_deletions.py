"""The sink's deletion of raw input entries (an opted-out user's dropped events): only the
event streams of its own prefix, and idempotent, so retries and recovery replays are safe."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import redis

from tailor.operators.records import Erasure, InputDeletion
from tailor.operators.redis.control import request_forget
from tailor.operators.redis.erasure import InputEraser
from tailor.operators.redis.keys import control_key, stream_key, user_key
from tailor.operators.redis.sink import _RedisSinkPartition
from tests.operators.sink_support import PREFIX, output, profile


def test_deletions_remove_entries_of_own_event_streams_only_and_twice_is_harmless(
    sink: _RedisSinkPartition, r: redis.Redis
) -> None:
    mine = stream_key(PREFIX, 1)
    other_prefix = stream_key("elsewhere", 1)
    doomed = [r.xadd(mine, {"payload": b"opted-out"}).decode() for _ in range(2)]
    kept = r.xadd(mine, {"payload": b"someone else"}).decode()
    foreign = r.xadd(other_prefix, {"payload": b"not ours"}).decode()
    batch = [
        InputDeletion(mine, doomed[0]),
        output("u1", 1),
        InputDeletion(mine, doomed[1]),
        InputDeletion(other_prefix, foreign),
        InputDeletion("file:events.jsonl", "0"),  # a replayed file: nothing to delete
    ]
    sink.write_batch(batch)
    sink.write_batch(batch)  # a retried batch, or a recovery replay: no error, same result
    assert [entry_id.decode() for entry_id, _ in r.xrange(mine)] == [kept]
    assert r.xlen(other_prefix) == 1
    assert profile(r, "u1")["version"] == 1


@pytest.mark.parametrize("delete_requests", [True, False], ids=["recovery-off", "recovery-on"])
def test_the_erasure_deletes_the_request_only_without_recovery(
    make_partition: Callable[..., _RedisSinkPartition], r: redis.Redis, delete_requests: bool
) -> None:
    """With recovery the request must outlive the epoch that applied it: the control source
    deletes it once that epoch is durable (`tailor.operators.redis.control.ControlSource`)."""
    sink = make_partition(inputs=InputEraser(PREFIX, delete_requests=delete_requests))
    sink.write_batch([output("u1", 1), output("u2", 1)])
    request_forget(r, PREFIX, "u1", opt_out=False)
    sink.write_batch([Erasure("u1", "forget", ())])
    assert not r.exists(user_key(PREFIX, "u1"))  # erased either way
    assert r.exists(user_key(PREFIX, "u2"))
    assert r.xlen(control_key(PREFIX)) == (0 if delete_requests else 1)
