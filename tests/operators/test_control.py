"""The control partition with recovery on deletes what it consumed only once it is durable:
never before two snapshots (two epoch ends) have passed it, and at once up to the position a
worker resumes from. Against the session's real Redis."""

from __future__ import annotations

from typing import Any, cast

import orjson
import redis

from tailor.operators.records import RawRecord
from tailor.operators.redis.control import ControlSource, request_forget
from tailor.operators.redis.keys import control_key
from tests.settings_support import payload_limits

LIMITS = payload_limits()

PREFIX = "ctl"


def entries(r: redis.Redis) -> list[str]:
    found = cast(list[tuple[bytes, Any]], r.xrange(control_key(PREFIX)))
    return [entry_id.decode() for entry_id, _ in found]


def forget_all(r: redis.Redis, users: list[str]) -> list[str]:
    """One forget request per user; their entry ids."""
    for user in users:
        request_forget(r, PREFIX, user, opt_out=False)
    return entries(r)[-len(users) :]


def read_ids(batch: Any) -> list[str]:
    """The entry ids of the requests in a batch (announcements left out)."""
    return [rec.offset for rec in cast(list[RawRecord], batch) if rec.payload]


def source(redis_url: str, durable: bool) -> ControlSource:
    return ControlSource(
        redis_url, durable=durable, prefix=PREFIX, poll_interval_s=30.0, limits=LIMITS
    )


def test_a_request_stays_until_the_snapshot_two_epochs_back_covers_it(
    redis_url: str, r: redis.Redis
) -> None:
    part = source(redis_url, durable=True).build_part("control", control_key(PREFIX), None)
    first = forget_all(r, ["alice", "bob"])
    assert read_ids(part.next_batch()) == first
    part.snapshot()  # end of epoch 1: alice and bob are in it
    later = forget_all(r, ["carol"])
    assert read_ids(part.next_batch()) == later  # epoch 2: epoch 1 committed, not yet older
    assert entries(r) == first + later
    part.snapshot()  # end of epoch 2
    part.next_batch()  # epoch 3: epochs 1 and 2 committed
    assert entries(r) == later
    part.snapshot()
    part.next_batch()
    assert entries(r) == []
    part.close()


def test_a_resumed_worker_deletes_everything_up_to_its_resume_position(
    redis_url: str, r: redis.Redis
) -> None:
    ids = forget_all(r, ["alice", "bob", "carol"])
    resumed = (ids[1], 4)  # alice and bob were read and snapshotted before the crash
    part = source(redis_url, durable=True).build_part("control", control_key(PREFIX), resumed)
    assert entries(r) == ids  # nothing deleted before the partition runs
    batch = part.next_batch()
    assert read_ids(batch) == ids[2:]  # carol's request is read again
    assert entries(r) == ids[2:]  # and kept: it is not durable yet
    assert orjson.loads(cast(list[RawRecord], batch)[0].payload)["user_id"] == "carol"
    part.close()


def test_without_recovery_the_source_deletes_nothing(redis_url: str, r: redis.Redis) -> None:
    """The sink deletes the request once the erasure is written (`InputEraser.delete_requests`)."""
    part = source(redis_url, durable=False).build_part("control", control_key(PREFIX), None)
    ids = forget_all(r, ["alice"])
    for _ in range(3):
        part.next_batch()
        part.snapshot()
    part.next_batch()
    assert entries(r) == ids
    part.close()
