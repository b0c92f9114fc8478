"""RedisStreamSource against a real redis-server: completeness, order, resume, idling, outages."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import bytewax.operators as op
import pytest
import redis
from bytewax.dataflow import Dataflow
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.testing import TestingSink, run_main
from prometheus_client import REGISTRY

from tailor.operators import lifecycle
from tailor.operators.progress import is_announcement
from tailor.operators.records import RawRecord
from tailor.operators.redis.keys import stream_key
from tailor.operators.redis.routing import partition_for
from tailor.operators.redis.source import RedisStreamSource, backoff_s
from tests.conftest import RedisServer, free_port
from tests.settings_support import payload_limits

LIMITS = payload_limits()


@pytest.fixture(autouse=True)
def _no_stop_request() -> Iterator[None]:
    lifecycle.reset()
    yield
    lifecycle.reset()


def xadd(r: redis.Redis, key: str, fields: dict[Any, Any]) -> str:
    entry_id: Any = r.xadd(key, fields)
    return str(entry_id.decode())


def publish(r: redis.Redis, n: int, partitions: int = 4) -> dict[str, list[tuple[str, bytes]]]:
    """XADD n payloads routed by user; returns (entry id, payload) per stream in XADD order."""
    added: dict[str, list[tuple[str, bytes]]] = {
        stream_key("tailor", p): [] for p in range(partitions)
    }
    for i in range(n):
        user = f"user-{i % 37}"
        key = stream_key("tailor", partition_for(user, partitions))
        payload = f'{{"event_id":"e{i}","user_id":"{user}"}}'.encode()
        added[key].append((xadd(r, key, {b"payload": payload}), payload))
    return added


def run_source(source: RedisStreamSource) -> list[RawRecord]:
    """The entries read, without the partitions' announcements."""
    return [rec for rec in run_all(source) if not is_announcement(rec)]


def run_all(source: RedisStreamSource) -> list[RawRecord]:
    out: list[RawRecord] = []
    flow = Dataflow("redis-source-test")
    op.output("out", op.input("inp", flow, source), TestingSink(out))
    run_main(flow)
    return out


def test_flow_reads_every_entry_once_in_order_per_partition(r: redis.Redis, redis_url: str) -> None:
    added = publish(r, 2_500)
    source = RedisStreamSource(redis_url, batch_size=100, stop_when_drained=True, limits=LIMITS)
    out = run_all(source)
    entries_read = [rec for rec in out if not is_announcement(rec)]
    assert len(entries_read) == 2_500
    for key, entries in added.items():
        got = [(rec.offset, rec.payload) for rec in entries_read if rec.origin == key]
        assert got == entries, key
    assert all(rec.read_at > 0 for rec in out)
    # every batch is numbered in its partition; each partition announces its end, last
    for key, entries in added.items():
        stamps = [rec.stamp for rec in out if rec.origin == key and rec.stamp is not None]
        seqs = sorted({s.seq for s in stamps})
        assert seqs == list(range(len(seqs)))
        assert all(s.size == stamps.count(s) for s in stamps)  # size = records stamped so
        assert [s.kind for s in stamps].count("end") == 1 and stamps[-1].kind == "end"
        assert sum(1 for s in stamps if s.kind == "data") == len(entries)


def test_entry_without_payload_becomes_an_empty_record(r: redis.Redis, redis_url: str) -> None:
    entry_id = xadd(r, stream_key("tailor", 0), {b"other": b"x"})
    out = run_source(
        RedisStreamSource(redis_url, partitions=1, stop_when_drained=True, limits=LIMITS)
    )
    assert [(rec.payload, rec.offset) for rec in out] == [(b"", entry_id)]


def test_partition_resumes_after_its_snapshot(r: redis.Redis, redis_url: str) -> None:
    key = stream_key("tailor", 1)
    ids = [xadd(r, key, {b"payload": f"p{i}".encode()}) for i in range(10)]
    source = RedisStreamSource(redis_url, batch_size=4, stop_when_drained=True, limits=LIMITS)
    assert source.list_parts() == [stream_key("tailor", p) for p in range(4)]

    first = source.build_part("inp", key, None)
    batch = first.next_batch()
    assert [rec.offset for rec in batch] == ids[:4]
    assert first.snapshot() == (ids[3], 1)
    first.close()

    resumed = source.build_part("inp", key, (ids[3], 1))
    batch = resumed.next_batch()
    assert [rec.payload for rec in batch] == [b"p4", b"p5", b"p6", b"p7"]
    assert batch[0].stamp is not None and batch[0].stamp.seq == 1  # numbering carries on
    assert [rec.payload for rec in resumed.next_batch()] == [b"p8", b"p9"]
    assert resumed.snapshot() == (ids[9], 3)
    (end,) = resumed.next_batch()
    assert is_announcement(end) and end.stamp is not None and end.stamp.kind == "end"
    with pytest.raises(StopIteration):
        resumed.next_batch()
    resumed.close()


def test_second_run_with_recovery_reads_only_new_entries(
    r: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    init_db_dir(tmp_path, 1)
    recovery = RecoveryConfig(str(tmp_path))
    source = RedisStreamSource(
        redis_url, partitions=2, batch_size=7, stop_when_drained=True, limits=LIMITS
    )

    def run() -> list[RawRecord]:
        out: list[RawRecord] = []
        flow = Dataflow("redis-source-recovery")
        op.output("out", op.input("inp", flow, source), TestingSink(out))
        run_main(flow, epoch_interval=timedelta(0), recovery_config=recovery)
        return [rec for rec in out if not is_announcement(rec)]

    def located(added: dict[str, list[tuple[str, bytes]]]) -> list[tuple[str, str]]:
        return sorted((key, entry_id) for key, entries in added.items() for entry_id, _ in entries)

    first = located(publish(r, 40, partitions=2))
    assert sorted((rec.origin, rec.offset) for rec in run()) == first
    second = located(publish(r, 30, partitions=2))
    assert sorted((rec.origin, rec.offset) for rec in run()) == second


def test_idle_partition_returns_nothing_and_asks_to_be_woken_later(
    r: redis.Redis, redis_url: str
) -> None:
    key = stream_key("tailor", 0)
    part = RedisStreamSource(redis_url, poll_interval_s=30.0, limits=LIMITS).build_part(
        "inp", key, None
    )
    before = datetime.now(UTC)
    (idle,) = part.next_batch()  # the partition says once that it ran dry ...
    assert idle.stamp is not None and (idle.stamp.kind, idle.stamp.seq) == ("idle", 0)
    awake = part.next_awake()
    assert awake is not None and awake > before
    assert part.next_batch() == []  # ... and then just polls
    assert part.snapshot() == ("0-0", 1)
    r.xadd(key, {b"payload": b"late"})
    assert [rec.payload for rec in part.next_batch()] == [b"late"]
    assert part.next_awake() is None
    assert [rec.stamp.kind for rec in part.next_batch() if rec.stamp] == ["idle"]  # dry again
    part.close()


def test_stop_request_ends_partitions(r: redis.Redis, redis_url: str) -> None:
    publish(r, 50)
    part = RedisStreamSource(redis_url, limits=LIMITS).build_part(
        "inp", stream_key("tailor", 0), None
    )
    lifecycle.request_stop()
    with pytest.raises(StopIteration):
        part.next_batch()
    part.close()


def test_unreachable_redis_backs_off_instead_of_crashing() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    labels = {"operation": "read", "kind": "ConnectionError"}
    before = REGISTRY.get_sample_value("tailor_redis_errors_total", labels) or 0.0
    part = RedisStreamSource(url, limits=LIMITS).build_part(
        "inp", stream_key("tailor", 0), ("5-0", 2)
    )
    start = datetime.now(UTC)
    assert part.next_batch() == []
    first = part.next_awake()
    assert part.next_batch() == []
    second = part.next_awake()
    assert first is not None and second is not None and start < first < second
    assert part.snapshot() == ("5-0", 2)  # an outage is not a dry spell: no announcement
    after = REGISTRY.get_sample_value("tailor_redis_errors_total", labels) or 0.0
    assert after - before == 2.0
    part.close()


def test_backoff_is_capped_exponential() -> None:
    assert [backoff_s(n) for n in range(1, 9)] == [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0]
    assert backoff_s(10_000) == 5.0


def lag(key: str) -> float | None:
    return REGISTRY.get_sample_value("tailor_source_lag_entries", {"stream": key})


def test_lag_counts_unread_entries_from_the_start(r: redis.Redis, redis_url: str) -> None:
    key = stream_key("lag1", 0)
    for i in range(25):
        r.xadd(key, {b"payload": b"%d" % i})
    part = RedisStreamSource(
        redis_url, prefix="lag1", batch_size=10, lag_interval_s=0.0, limits=LIMITS
    )
    reader = part.build_part("inp", key, None)
    seen = []
    for _ in range(3):
        reader.next_batch()
        seen.append(lag(key))
    assert seen == [15.0, 5.0, 0.0]
    for i in range(30):
        r.xadd(key, {b"payload": b"more %d" % i})
    assert len(reader.next_batch()) == 10
    assert lag(key) == 20.0  # known from the position counted since the drain
    reader.close()


def test_lag_is_exact_for_a_stream_trimmed_before_the_worker_started(
    r: redis.Redis, redis_url: str
) -> None:
    key = stream_key("lag2", 0)
    for i in range(50):
        r.xadd(key, {b"payload": b"%d" % i})
    r.xtrim(key, maxlen=20, approximate=False)  # entries-added stays 50, 20 remain
    reader = RedisStreamSource(
        redis_url, prefix="lag2", batch_size=8, lag_interval_s=0.0, limits=LIMITS
    ).build_part("inp", key, None)
    reader.next_batch()
    assert lag(key) == 12.0
    reader.next_batch()
    assert lag(key) == 4.0
    reader.close()


def test_lag_of_a_resumed_partition_is_unknown_until_it_catches_up(
    r: redis.Redis, redis_url: str
) -> None:
    key = stream_key("lag3", 0)
    ids = [xadd(r, key, {b"payload": b"%d" % i}) for i in range(30)]
    source = RedisStreamSource(
        redis_url, prefix="lag3", batch_size=10, lag_interval_s=0.0, limits=LIMITS
    )
    reader = source.build_part("inp", key, ids[4])  # a snapshot from before batch stamps
    assert len(reader.next_batch()) == 10
    assert lag(key) is None  # 15 remain, but a plain XREAD cannot know without a scan
    assert len(reader.next_batch()) == 10
    assert len(reader.next_batch()) == 5
    assert lag(key) == 0.0
    missing = source.build_part("inp", stream_key("lag3", 1), None)
    assert [rec.payload for rec in missing.next_batch()] == [b""]  # its idle announcement
    assert lag(stream_key("lag3", 1)) == 0.0  # no stream yet: nothing to read
    reader.close()
    missing.close()


def test_lag_is_sampled_at_most_every_interval(r: redis.Redis, redis_url: str) -> None:
    key = stream_key("lag4", 0)
    for i in range(30):
        r.xadd(key, {b"payload": b"%d" % i})
    reader = RedisStreamSource(
        redis_url, prefix="lag4", batch_size=10, lag_interval_s=3600.0, limits=LIMITS
    ).build_part("inp", key, None)
    reader.next_batch()
    reader.next_batch()
    assert lag(key) == 20.0  # the first read sampled; the second did not
    reader.close()


def test_redis_up_follows_the_reads() -> None:
    server = RedisServer()
    server.start()
    try:
        key = stream_key("up", 0)
        part = RedisStreamSource(server.url, prefix="up", limits=LIMITS).build_part(
            "inp", key, None
        )
        part.next_batch()
        assert REGISTRY.get_sample_value("tailor_redis_up", {"operation": "read"}) == 1.0
        server.stop()
        part.next_batch()
        assert REGISTRY.get_sample_value("tailor_redis_up", {"operation": "read"}) == 0.0
        server.start()
        part.next_batch()
        assert REGISTRY.get_sample_value("tailor_redis_up", {"operation": "read"}) == 1.0
        part.close()
    finally:
        server.stop()
        shutil.rmtree(server.dir, ignore_errors=True)
