"""Bounded reads of a stream partition against a real redis-server: the byte budget, oversized
payloads cut inside Redis, nothing lost or read twice across a resume, and the lag gauge."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import bytewax.operators as op
import pytest
import redis
from bytewax.dataflow import Dataflow
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.testing import run_main
from prometheus_client import REGISTRY

from tailor.operators import lifecycle
from tailor.operators.payload_limits import PayloadLimits
from tailor.operators.progress import is_announcement
from tailor.operators.records import RawRecord
from tailor.operators.redis.keys import stream_key
from tailor.operators.redis.source import RedisStreamSource, StreamState, _RedisStreamPartition

LIMITS = PayloadLimits(max_payload_bytes=50_000, prefix_bytes=100, batch_max_bytes=120_000)
KEY = stream_key("tailor", 0)


@pytest.fixture(autouse=True)
def _no_stop_request() -> Iterator[None]:
    lifecycle.reset()
    yield
    lifecycle.reset()


def whole_size(record: RawRecord) -> int:
    """The payload's length as the producer wrote it, cut or not."""
    return len(record.payload) if record.size is None else record.size


def publish_sizes(r: redis.Redis, sizes: list[int]) -> list[tuple[str, bytes]]:
    """One entry per size, payload `n:` padded to that size; (entry id, payload) in order."""
    added = []
    for n, size in enumerate(sizes):
        payload = f"{n}:".encode().ljust(size, b"x")
        entry_id: bytes = r.xadd(KEY, {b"payload": payload})  # type: ignore[assignment]
        added.append((entry_id.decode(), payload))
    return added


def mixed_sizes(n: int, seed: int = 7) -> list[int]:
    """Mostly small, some near the limits, a few far past the budget."""
    rng = random.Random(seed)
    choices = [(200, 0.5), (30_000, 0.2), (49_000, 0.1), (60_000, 0.1), (400_000, 0.1)]
    return [
        rng.randint(3, rng.choices([c for c, _ in choices], [w for _, w in choices])[0])
        for _ in range(n)
    ]


def partition(
    redis_url: str, resume: StreamState | None = None, batch_size: int = 25
) -> _RedisStreamPartition:
    source = RedisStreamSource(
        redis_url, partitions=1, batch_size=batch_size, stop_when_drained=True, limits=LIMITS
    )
    return source.build_part("inp", KEY, resume)


def read_batches(part: _RedisStreamPartition) -> list[list[RawRecord]]:
    """Every data batch until the partition announces its end."""
    batches = []
    while True:
        batch = part.next_batch()
        if len(batch) == 1 and is_announcement(batch[0]):
            return batches
        batches.append(batch)


def test_a_batch_never_passes_the_byte_budget_unless_it_is_one_entry(
    r: redis.Redis, redis_url: str
) -> None:
    sizes = mixed_sizes(300)
    added = publish_sizes(r, sizes)
    part = partition(redis_url)
    batches = read_batches(part)
    part.close()
    flat = [rec for batch in batches for rec in batch]
    assert [rec.offset for rec in flat] == [entry_id for entry_id, _ in added]
    assert [rec.payload for rec in flat] == [p if len(p) <= 50_000 else p[:100] for _, p in added]
    budget, start = LIMITS.batch_max_bytes, 0
    for batch in batches:
        total = sum(whole_size(rec) for rec in batch)
        assert total <= budget or len(batch) == 1
        end = start + len(batch)
        if end < len(sizes):  # a batch stops only when full or when the next would not fit
            assert len(batch) == 25 or total + sizes[end] > budget
        start = end
    assert any(len(batch) < 25 for batch in batches[:-1])  # the budget did stop some
    assert any(len(batch) == 1 and whole_size(batch[0]) > budget for batch in batches)


def test_an_oversized_payload_arrives_as_its_prefix_size_and_sha1(
    r: redis.Redis, redis_url: str
) -> None:
    big = b'{"event_id": "e", "user_id": "u", "pad": "' + b"a" * 400_000 + b'"}'
    r.xadd(KEY, {b"payload": b"small"})
    r.xadd(KEY, {b"payload": big, b"other": b"z" * 300_000})
    r.xadd(KEY, {b"other": b"no payload field"})
    part = partition(redis_url)
    records = [rec for batch in read_batches(part) for rec in batch]
    part.close()
    assert [(rec.payload, rec.size, rec.sha1) for rec in records] == [
        (b"small", None, None),
        (big[:100], len(big), hashlib.sha1(big).hexdigest()),
        (b"", None, None),
    ]


def test_resume_after_a_batch_the_budget_cut_reads_each_entry_once(
    r: redis.Redis, redis_url: str
) -> None:
    """The script reads past where the budget stops; the snapshot must be the last returned."""
    added = publish_sizes(r, [35_000] * 12)
    first = partition(redis_url)
    batch = first.next_batch()
    assert len(batch) == 3  # 105,000 bytes: the fourth, read by the script, would pass 120,000
    snapshot = first.snapshot()
    assert snapshot == (added[2][0], 1)
    first.close()
    resumed = partition(redis_url, snapshot)
    rest = [rec for batch in read_batches(resumed) for rec in batch]
    resumed.close()
    read = [(rec.offset, rec.payload) for rec in batch + rest]
    assert read == added


def test_a_run_stopped_between_byte_bounded_batches_resumes_exactly_once(
    r: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """Through Bytewax recovery: the second run starts after the first run's last batch."""
    added = publish_sizes(r, mixed_sizes(80, seed=11))
    init_db_dir(tmp_path, 1)
    recovery = RecoveryConfig(str(tmp_path))
    source = RedisStreamSource(
        redis_url, partitions=1, batch_size=25, stop_when_drained=True, limits=LIMITS
    )

    def run(stop_after: int | None) -> list[RawRecord]:
        out: list[RawRecord] = []

        def seen(_step: str, record: RawRecord) -> None:
            out.append(record)
            if stop_after is not None and len(out) >= stop_after:
                lifecycle.request_stop()  # the partition ends at its next read

        flow = Dataflow("bounded-resume")
        op.inspect("stop", op.input("inp", flow, source), seen)
        run_main(flow, epoch_interval=timedelta(0), recovery_config=recovery)
        return [rec for rec in out if not is_announcement(rec)]

    first = run(stop_after=10)
    lifecycle.reset()
    second = run(stop_after=None)
    assert 0 < len(first) < len(added)
    assert [rec.offset for rec in first + second] == [entry_id for entry_id, _ in added]


def lag(key: str) -> float | None:
    return REGISTRY.get_sample_value("tailor_source_lag_entries", {"stream": key})


def test_lag_counts_what_a_budget_cut_batch_left_unread(r: redis.Redis, redis_url: str) -> None:
    """A short batch is not a drained stream when the byte budget cut it."""
    key = stream_key("lagb", 0)
    for i in range(10):
        r.xadd(key, {b"payload": b"%d" % i + b"x" * 45_000})
    source = RedisStreamSource(
        redis_url, prefix="lagb", batch_size=100, lag_interval_s=0.0, limits=LIMITS
    )
    reader = source.build_part("inp", key, None)
    seen = []
    for _ in range(5):
        assert len(reader.next_batch()) == 2  # 90,002 bytes: a third would pass 120,000
        seen.append(lag(key))
    assert seen == [8.0, 6.0, 4.0, 2.0, 0.0]
    reader.close()
