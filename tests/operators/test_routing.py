"""Routing must be stable across processes (unlike `hash()`), spread users evenly, and say
where Bytewax itself places a key (checked against real 2- and 3-worker runs)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import bytewax.operators as op
import orjson
import pytest
import redis
from bytewax.dataflow import Dataflow
from bytewax.inputs import DynamicSource, StatelessSourcePartition
from bytewax.testing import TestingSink, cluster_main

from tailor.operators.redis.keys import stream_key
from tailor.operators.redis.routing import partition_for, readers, replica_keys, worker_of
from tailor.operators.redis.source import RedisStreamSource
from tests.settings_support import payload_limits

LIMITS = payload_limits()

ROOT = Path(__file__).resolve().parents[2]


def test_known_values_are_crc32() -> None:
    # Fixed values: any other language's CRC-32 (IEEE) gives the same partitions.
    assert [partition_for(u, 8) for u in ("alice", "bob", "carol")] == [7, 0, 3]
    assert partition_for("u1", 4) == 2
    assert partition_for("ü-ñ", 1000) == 192


def test_same_partitions_in_another_process_with_another_hash_seed() -> None:
    users = [f"user-{i}" for i in range(200)]
    here = [partition_for(u, 7) for u in users]
    code = (
        "from tailor.operators.redis.routing import partition_for;"
        "print([partition_for(f'user-{i}', 7) for i in range(200)])"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == str(here)


def test_users_spread_over_all_partitions() -> None:
    counts = Counter(partition_for(f"user-{i}", 4) for i in range(20_000))
    assert sorted(counts) == [0, 1, 2, 3]
    assert all(4_500 < n < 5_500 for n in counts.values()), counts


def test_stream_key_and_bad_partition_count() -> None:
    assert stream_key("tailor", 3) == "tailor:events:3"
    with pytest.raises(ValueError):
        partition_for("u1", 0)


KEYS = [f"user-{i}" for i in range(200)] + ["models", "replica:0", "é-ü", "x" * 17]


class _Keys(StatelessSourcePartition[str]):
    """Worker 0 emits every key once; each partition records which thread runs it."""

    def __init__(self, worker: int, threads: dict[int, int]) -> None:
        self.worker, self.threads, self.done = worker, threads, False

    def next_batch(self) -> list[str]:
        self.threads[threading.get_ident()] = self.worker
        if self.done:
            raise StopIteration
        self.done = True
        return KEYS if self.worker == 0 else []


class _Source(DynamicSource[str]):
    def __init__(self, threads: dict[int, int]) -> None:
        self.threads = threads

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Keys:
        return _Keys(worker_index, self.threads)


def placed_by_bytewax(workers: int) -> dict[str, int]:
    """The worker a real keyed step ran each key on, with `workers` worker threads."""
    threads: dict[int, int] = {}
    seen: list[tuple[str, int]] = []
    flow = Dataflow("routing_check")
    keyed = op.key_on("key", op.input("in", flow, _Source(threads)), lambda k: k)
    landed = op.stateful_map("where", keyed, lambda _s, _v: (None, threading.get_ident()))
    op.output("out", landed, TestingSink(seen))
    cluster_main(flow, [], 0, worker_count_per_proc=workers)
    return {key: threads[thread] for key, thread in seen}


@pytest.mark.parametrize("workers", [2, 3])
def test_worker_of_is_where_bytewax_places_a_key(workers: int) -> None:
    placed = placed_by_bytewax(workers)
    assert len(placed) == len(KEYS)
    assert placed == {key: worker_of(key, workers) for key in KEYS}
    assert set(placed.values()) == set(range(workers))


@pytest.mark.parametrize("workers", [1, 2, 3, 4, 8])
def test_replica_keys_put_one_key_on_each_worker(workers: int) -> None:
    keys = replica_keys(workers)
    assert len(set(keys)) == workers
    assert [worker_of(k, workers) for k in keys] == list(range(workers))


def test_worker_of_refuses_no_workers() -> None:
    with pytest.raises(ValueError):
        worker_of("u1", 0)


def read_and_keyed_by(redis_url: str, partitions: int, workers: int) -> dict[str, tuple[int, int]]:
    """Per user, (the worker whose Redis source partition read their event, the worker that
    holds their key), from a real run of `workers` worker threads over real streams."""
    threads: dict[int, int] = {}
    seen: list[tuple[str, int, int]] = []
    flow = Dataflow("partition_check")
    threads_of = op.input("threads", flow, _Source(threads))  # maps thread → worker index
    source = RedisStreamSource(
        redis_url, "place", partitions, stop_when_drained=True, limits=LIMITS
    )
    read = op.filter_map(  # payloads only: a partition also announces idleness and its end
        "read_by",
        op.input("in", flow, source),
        lambda raw: (
            (orjson.loads(raw.payload)["user_id"], threading.get_ident()) if raw.payload else None
        ),
    )
    keyed = op.key_on("key", read, lambda item: item[0])
    landed = op.stateful_map(
        "held_by", keyed, lambda _s, item: (None, (item[1], threading.get_ident()))
    )
    op.output("out", op.map("flat", landed, lambda kv: (kv[0], *kv[1])), TestingSink(seen))
    op.output("threads_out", threads_of, TestingSink([]))
    cluster_main(flow, [], 0, worker_count_per_proc=workers)
    return {user: (threads[reader], threads[holder]) for user, reader, holder in seen}


@pytest.mark.parametrize(("partitions", "workers"), [(4, 2), (12, 3)])
def test_partition_for_puts_a_users_events_where_their_key_is(
    redis_url: str, r: redis.Redis, partitions: int, workers: int
) -> None:
    """Producers routing with `partition_for(user, partitions, workers)`: the Redis source
    partition that reads a user's events runs on the worker holding the user's key, so the
    user step exchanges nothing (12 partitions: Bytewax deals them in name order)."""
    users = [f"user-{i}" for i in range(120)]
    pipe = r.pipeline(transaction=False)
    for user in users:
        stream = stream_key("place", partition_for(user, partitions, workers))
        pipe.xadd(stream, {"payload": orjson.dumps({"user_id": user})})
    pipe.execute()
    placed = read_and_keyed_by(redis_url, partitions, workers)
    assert sorted(placed) == sorted(users)
    assert all(reader == holder for reader, holder in placed.values())
    assert {holder for _, holder in placed.values()} == set(range(workers))
    by_crc32 = {u: partition_for(u, partitions) for u in users}
    assert any(readers(partitions, workers)[by_crc32[u]] != placed[u][1] for u in users)
