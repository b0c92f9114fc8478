"""Routing in one home: which stream partition a user's events go to, which worker a key is on.

A producer must route each user by one rule for ever: a user's events have to land on one
stream so one partition sees them in order. Python's `hash()` is salted per process, so
partitions use CRC-32, which any language computes the same; with several workers,
`partition_for` picks by CRC-32 among the partitions the user's own worker reads, so no event
crosses a process before the user step.

`worker_of` is where Bytewax 0.21 places a stateful step's key: SipHash-1-3 (Rust's
`DefaultHasher`, keys 0) of the key's UTF-8 bytes plus a 0xFF terminator (Rust's `str` hash),
modulo the worker count (`stateful_batch` in src/operators.rs, `partition` in src/timely.rs).
`replica_keys(n)[w]` is a key Bytewax places on worker w: keying the models step on
`replica_keys(n)[worker_of(user, n)]` keeps a user's update on the worker that holds the
user's key, so it crosses no process (docs/design/scale-out.md, section 8).
tests/operators/test_routing.py checks both against a real 2- and 3-worker run.

Both depend on the worker count, which must therefore be known when the flow is built; a
`WorkerCountCheck` input compares it with the count Bytewax actually runs and stops every
worker with one line when they differ (a silent mismatch would put replicas on the wrong
workers and cross every update).

>>> partition_for("u1", 4)
2
>>> partition_for("u1", 4) == partition_for("u1", 4)
True

Stream names are in `tailor.operators.redis.keys` (`stream_key`).
"""

from __future__ import annotations

import itertools
import struct
import zlib
from functools import cache, lru_cache
from typing import Any

from bytewax.inputs import DynamicSource, StatelessSourcePartition

_MASK = (1 << 64) - 1


def partition_for(user_id: str, partitions: int, workers: int = 1) -> int:
    """The partition of `user_id` among `partitions`: stable across processes and languages.

    With one worker it is `crc32(user_id) % partitions`. With `workers` > 1 it is the same
    choice among the partitions that the worker holding the user's key reads
    (`readers`; that worker is `worker_of(user_id, workers)`), so a user's events are read
    where their state lives and cross no process. Any one rule keeps a user's events in one
    partition, in order; crc32 alone is still correct with several workers, only slower.

    >>> [partition_for(u, 8) for u in ("alice", "bob", "carol")]
    [7, 0, 3]
    >>> [partition_for(u, 4, workers=2) for u in ("alice", "bob", "carol")]
    [2, 1, 3]
    """
    if partitions < 1 or workers < 1:
        raise ValueError("partitions and workers must be at least 1")
    crc = zlib.crc32(user_id.encode("utf-8"))
    if workers == 1:
        return crc % partitions
    mine = _read_by(partitions, workers)[worker_of(user_id, workers)]
    return mine[crc % len(mine)] if mine else crc % partitions


@cache
def _read_by(partitions: int, workers: int) -> tuple[tuple[int, ...], ...]:
    """The partitions each worker reads (`readers` inverted, once per count: a producer asks
    for every event)."""
    reader = readers(partitions, workers)
    return tuple(tuple(p for p in range(partitions) if reader[p] == w) for w in range(workers))


@cache
def readers(partitions: int, workers: int) -> tuple[int, ...]:
    """The worker that reads each stream partition: Bytewax deals a source's partitions to
    its workers in turn, in the sorted order of their names (`<prefix>:events:10` before
    `<prefix>:events:2`; checked against real 2- and 3-worker runs).

    >>> readers(4, 2), readers(12, 3)[:4]
    ((0, 1, 0, 1), (0, 1, 1, 2))
    """
    by_name = sorted(range(partitions), key=str)
    out = [0] * partitions
    for rank, partition in enumerate(by_name):
        out[partition] = rank % workers
    return tuple(out)


def _rotl(x: int, b: int) -> int:
    return ((x << b) | (x >> (64 - b))) & _MASK


def _round(v0: int, v1: int, v2: int, v3: int) -> tuple[int, int, int, int]:
    v0 = (v0 + v1) & _MASK
    v1 = _rotl(v1, 13) ^ v0
    v0 = _rotl(v0, 32)
    v2 = (v2 + v3) & _MASK
    v3 = _rotl(v3, 16) ^ v2
    v0 = (v0 + v3) & _MASK
    v3 = _rotl(v3, 21) ^ v0
    v2 = (v2 + v1) & _MASK
    v1 = _rotl(v1, 17) ^ v2
    v2 = _rotl(v2, 32)
    return v0, v1, v2, v3


def siphash13(data: bytes) -> int:
    """SipHash-1-3 with keys (0, 0): Rust's `DefaultHasher::new()`.

    >>> hex(siphash13(b"models" + bytes([0xFF])))
    '0x92c7780b2f1d1d70'
    """
    v0, v1 = 0x736F6D6570736575, 0x646F72616E646F6D
    v2, v3 = 0x6C7967656E657261, 0x7465646279746573
    tail = len(data) % 8
    for (m,) in struct.iter_unpack("<Q", data[: len(data) - tail]):
        v3 ^= m
        v0, v1, v2, v3 = _round(v0, v1, v2, v3)
        v0 ^= m
    last = (len(data) & 0xFF) << 56
    for i, byte in enumerate(data[len(data) - tail :]):
        last |= byte << (8 * i)
    v3 ^= last
    v0, v1, v2, v3 = _round(v0, v1, v2, v3)
    v0 ^= last
    v2 ^= 0xFF
    for _ in range(3):
        v0, v1, v2, v3 = _round(v0, v1, v2, v3)
    return v0 ^ v1 ^ v2 ^ v3


def worker_of(key: str, workers: int) -> int:
    """The worker (0 .. workers-1) a keyed step's item with this key goes to.

    >>> [worker_of(u, 2) for u in ("alice", "bob", "carol")]
    [0, 1, 1]
    """
    if workers < 1:
        raise ValueError("workers must be at least 1")
    if workers == 1:
        return 0
    return _key_hash(key) % workers


@lru_cache(maxsize=1 << 16)
def _key_hash(key: str) -> int:
    """Rust's hash of a `str` key; cached, as the models step asks it for every update of a
    user (SipHash in Python costs ~16 µs a call, ~3% of a worker's time uncached)."""
    return siphash13(key.encode("utf-8") + b"\xff")


@cache
def replica_keys(workers: int) -> tuple[str, ...]:
    """One key per worker: `keys[w]` is routed to worker w (a replica that never moves).

    >>> replica_keys(2)
    ('replica:1', 'replica:0')
    >>> all(worker_of(k, 3) == w for w, k in enumerate(replica_keys(3)))
    True
    """
    if workers < 1:
        raise ValueError("workers must be at least 1")
    out: dict[int, str] = {}
    for j in itertools.count():
        key = f"replica:{j}"
        out.setdefault(worker_of(key, workers), key)
        if len(out) == workers:
            break
    return tuple(out[w] for w in range(workers))


class WorkerCountMismatch(ValueError):
    """The flow was built for another worker count than the one Bytewax runs."""


class _NoItems(StatelessSourcePartition[Any]):
    def next_batch(self) -> list[Any]:
        raise StopIteration


class WorkerCountCheck(DynamicSource[Any]):
    """An input that emits nothing: building it on a worker checks the worker count.

    Bytewax builds a dynamic source once per worker with `worker_count`, before any item
    flows, so a mismatch stops the run before anything is read or routed.
    """

    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.workers = workers

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _NoItems:
        if worker_count != self.workers:
            raise WorkerCountMismatch(
                f"cluster: the flow was built for {self.workers} worker(s) "
                f"(cluster.addresses x cluster.workers_per_process) but Bytewax runs "
                f"{worker_count}: set them to match"
            )
        return _NoItems()
