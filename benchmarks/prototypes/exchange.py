"""What one item crossing between two Bytewax 0.21 processes costs, by source batch size.

    python -m benchmarks.prototypes.exchange [ITEMS]

Two processes, one worker each. Every worker's `DynamicSource` partition emits ITEMS/2 items
(a tuple of a user id and ten item ids, the size of a scatter message) in batches of BATCH,
tagged with the worker that read them; a keyed step counts them. Keyed `local`, an item's
key is the replica key of its own worker (`tailor.operators.redis.routing.replica_keys`), so it
never leaves the process; keyed `cross`, the other worker's, so every item crosses. The difference
in time per item between the two runs is the exchange cost per item (pickling, the socket,
unpickling).

`--types` then sends a click (user, item, time, 20 recent items, a flag) across as a plain
tuple, a plain dataclass, a frozen slots dataclass and a NamedTuple, and prints the CPU µs
per item of both processes (start-up subtracted): the type alone changes the cost severalfold.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from typing import Any, NamedTuple

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.inputs import DynamicSource, StatelessSourcePartition
from bytewax.operators import StatefulBatchLogic

from benchmarks.prototypes.common import (
    CountSink,
    _out_dir,
    _record,
    cpu_per_event,
    run_cluster,
)
from tailor.operators.redis.routing import replica_keys

Item = tuple[int, str, tuple[str, ...]]


class _Part(StatelessSourcePartition[Item]):
    def __init__(self, worker: int, n: int, batch: int) -> None:
        self.worker, self.left, self.batch, self.started = worker, n, batch, False
        self.payload = tuple(str(100_000 + i) for i in range(10))

    def next_batch(self) -> list[Item]:
        if not self.started:
            self.started = True
            _record(_out_dir(), f"start-{self.worker}", time.time())
        if self.left <= 0:
            raise StopIteration
        size = min(self.batch, self.left)
        self.left -= size
        return [(self.worker, f"user-{self.left - i}", self.payload) for i in range(size)]


class _Source(DynamicSource[Item]):
    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Part:
        n = int(os.environ["PROTO_EVENTS"]) // worker_count
        return _Part(worker_index, n, int(os.environ.get("PROTO_BATCH", "1000")))


class ClickTuple(NamedTuple):
    user: str
    item: str
    ts: float
    previous: tuple[str, ...]
    last: bool


@dataclass
class ClickPlain:
    user: str
    item: str
    ts: float
    previous: tuple[str, ...]
    last: bool


@dataclass(frozen=True, slots=True)
class ClickFrozen:
    user: str
    item: str
    ts: float
    previous: tuple[str, ...]
    last: bool


PAYLOADS: dict[str, Any] = {
    "tuple": lambda *fields: fields,
    "dataclass": ClickPlain,
    "frozen slots dataclass": ClickFrozen,
    "NamedTuple": ClickTuple,
}


def _as_payload(kind: str):  # type: ignore[no-untyped-def]
    make = PAYLOADS[kind]

    def build(it: Item) -> tuple[int, Any]:
        return it[0], make(it[1], "1234", 0.0, it[2] * 2, True)

    return build


class _Count(StatefulBatchLogic[Item, int, int]):
    def __init__(self, resume: int | None) -> None:
        self.n = resume or 0

    def on_batch(self, values: list[Item]) -> tuple[list[int], bool]:
        self.n += len(values)
        return [len(values)], StatefulBatchLogic.RETAIN

    def snapshot(self) -> int:
        return self.n


def get_flow() -> Dataflow:
    workers = int(os.environ["PROTO_WORKERS"])
    keys = replica_keys(workers)
    shift = 1 if os.environ.get("PROTO_CROSS") == "1" else 0
    flow = Dataflow("proto_exchange")
    items = op.input("items", flow, _Source())
    kind = os.environ.get("PROTO_PAYLOAD")
    if kind:
        items = op.map("payload", items, _as_payload(kind))
    keyed = op.key_on("route", items, lambda it: keys[(it[0] + shift) % workers])
    op.output("out", op.stateful_batch("count", keyed, _Count), CountSink())
    return flow


def measure(items: int, batch: int) -> tuple[float, float]:
    """(local, cross) µs per item with 2 processes."""
    ref = "benchmarks.prototypes.exchange:get_flow"
    out = []
    for cross in ("0", "1"):
        env = {"PROTO_BATCH": str(batch), "PROTO_CROSS": cross}
        result = run_cluster(ref, 2, items, env)
        out.append(1e6 / result["events_per_s"])
    return out[0], out[1]


def by_type(items: int) -> dict[str, float]:
    """CPU µs per item crossing between 2 processes, by the item's Python type."""
    ref = "benchmarks.prototypes.exchange:get_flow"
    out = {}
    for kind in PAYLOADS:
        env = {"PROTO_BATCH": "1000", "PROTO_CROSS": "1", "PROTO_PAYLOAD": kind}
        _run, total, _busiest = cpu_per_event(ref, 2, items, env)
        out[kind] = total
    return out


if __name__ == "__main__":
    if "--types" in sys.argv:
        for kind, cpu in by_type(100_000).items():
            print(f"{kind}: {cpu:.1f} CPU µs per item crossing", flush=True)
        sys.exit()
    total = int(sys.argv[1]) if len(sys.argv) > 1 else 400_000
    for batch, n in ((1, total // 20), (100, total), (1000, total)):
        local, cross = measure(n, batch)
        print(
            f"batch {batch:>5}: local {local:.2f} µs/item, cross {cross:.2f} µs/item, "
            f"exchange {cross - local:.2f} µs/item ({n:,} items)",
            flush=True,
        )
