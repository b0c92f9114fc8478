"""Shared pieces of the scale-out prototypes (docs/design/scale-out.md): data, routing, runner.

Every prototype is a Bytewax flow module with a `get_flow()` factory, run in cluster mode by
`run_cluster` with 1 or 2 processes (one worker each). They share:

* the input: MovieLens latest-small ratings cycled as new users (like benchmarks/throughput.py),
  read by a `DynamicSource` whose partition on worker i of n takes the users with
  crc32(user) % n == i, a different hash than Bytewax's: about half the events cross processes
  at the first keyed step, as production's user-partitioned streams do;
* the per-user step (`user_step`): each user's recent distinct items, keyed by user;
* `worker_of` and `replica_keys` (`tailor.operators.redis.routing`): the worker Bytewax 0.21 routes
a state
  key to, and one key per worker; `balanced_keys`
  picks shard or replica keys that split evenly over 1, 2 and 4 workers
  (`python -m benchmarks.prototypes.common` checks `worker_of` against a real keyed step);
* timing: the source writes when its worker started reading and the sink when it wrote
  last, one JSON file per worker under $PROTO_OUT; events/s is the events over the span.
"""

from __future__ import annotations

import csv
import itertools
import json
import os
import socket
import subprocess
import sys
import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow, Stream
from bytewax.inputs import DynamicSource, StatelessSourcePartition
from bytewax.operators import StatefulBatchLogic
from bytewax.outputs import DynamicSink, StatelessSinkPartition

from tailor.operators.redis.routing import worker_of

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "movielens-latest-small"
if not DATA.exists():  # the worktree sits one level deeper than the main checkout
    DATA = Path("/work/shared/data/movielens-latest-small")
BATCH = 1000
HISTORY = 20


@dataclass  # plain: a frozen slots dataclass costs ~3x more to cross processes (exchange.py)
class Click:
    """One interaction: user, item, event time, and the user's items before it (oldest first)."""

    user: str
    item: str
    ts: float
    previous: tuple[str, ...] = ()
    last: bool = False  # the user's last click of this batch: where they are served


# --- routing: Bytewax 0.21's key → worker (tailor.operators.redis.routing)
# ---------------------------------


def balanced_keys(prefix: str, count: int, worker_counts: Iterable[int] = (1, 2, 4)) -> list[str]:
    """`count` keys `prefix<j>` (j from 0 up, skipping some) that split evenly over each worker
    count dividing `count`: shard keys whose load does not depend on hash luck."""
    counts = [w for w in worker_counts if count % w == 0]
    chosen: list[str] = []
    load = {w: [0] * w for w in counts}
    for j in itertools.count():
        key = f"{prefix}{j}"
        if all(load[w][worker_of(key, w)] < count // w for w in counts):
            chosen.append(key)
            for w in counts:
                load[w][worker_of(key, w)] += 1
            if len(chosen) == count:
                return chosen
    raise AssertionError("unreachable")


# --- data ------------------------------------------------------------------------------------


def movielens(n: int) -> list[tuple[str, str, float]]:
    """`n` (user, item, ts) in time order: the ratings cycled, each cycle as new users."""
    with (DATA / "ratings.csv").open() as handle:
        rows = sorted(
            (float(r["timestamp"]), r["userId"], r["movieId"]) for r in csv.DictReader(handle)
        )
    span = rows[-1][0] - rows[0][0] + 86400
    out: list[tuple[str, str, float]] = []
    for cycle in itertools.count():
        for ts, user, item in rows:
            if len(out) == n:
                return out
            out.append((f"{cycle}-{user}", item, ts + cycle * span))
    return out


class _Part(StatelessSourcePartition[Click]):
    def __init__(self, clicks: list[Click], out: Path | None, worker: int) -> None:
        self._batches = iter([clicks[i : i + BATCH] for i in range(0, len(clicks), BATCH)])
        self._out, self._worker, self._started = out, worker, False

    def next_batch(self) -> list[Click]:
        if not self._started:
            self._started = True
            _record(self._out, f"start-{self._worker}", time.time())
        return next(self._batches)  # StopIteration ends the partition


class ClickSource(DynamicSource[Click]):
    """This worker's share of `movielens(n)` (by crc32 of the user), in time order."""

    def __init__(self, n: int) -> None:
        self.n = n

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Part:
        mine = [
            Click(u, i, ts)
            for u, i, ts in movielens(self.n)
            if zlib.crc32(u.encode()) % worker_count == worker_index
        ]
        return _Part(mine, _out_dir(), worker_index)


class _SinkPart(StatelessSinkPartition[Any]):
    def __init__(self, out: Path | None, worker: int) -> None:
        self._out, self._worker, self.count, self.last = out, worker, 0, 0.0

    def write_batch(self, items: list[Any]) -> None:
        self.count += len(items)
        self.last = time.time()

    def close(self) -> None:
        _record(self._out, f"end-{self._worker}", self.last)
        _record(self._out, f"outputs-{self._worker}", self.count)


class CountSink(DynamicSink[Any]):
    """Counts outputs; records when this worker wrote its last one."""

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _SinkPart:
        return _SinkPart(_out_dir(), worker_index)


def _out_dir() -> Path | None:
    path = os.environ.get("PROTO_OUT")
    return Path(path) if path else None


def _record(out: Path | None, name: str, value: float) -> None:
    if out is not None:
        (out / f"{name}.json").write_text(json.dumps(value))


# --- the per-user step every option shares ---------------------------------------------------


class UserHistory(StatefulBatchLogic[Click, Click, list[str]]):
    """A user's recent distinct items; each click leaves with the items before it, the last
    of the user's batch marked (served there, as production's full updates are)."""

    def __init__(self, resume: list[str] | None) -> None:
        self.history = resume or []

    def on_batch(self, values: list[Click]) -> tuple[list[Click], bool]:
        out = []
        for i, c in enumerate(values):
            out.append(Click(c.user, c.item, c.ts, tuple(self.history), i == len(values) - 1))
            if c.item in self.history:
                self.history.remove(c.item)
            self.history.append(c.item)
            del self.history[:-HISTORY]
        return out, StatefulBatchLogic.RETAIN

    def snapshot(self) -> list[str]:
        return list(self.history)


def user_step(flow: Dataflow, n: int) -> Stream[Click]:
    """Source → keyed by user → history: the stream every option's models step reads."""
    clicks = op.input("clicks", flow, ClickSource(n))
    keyed = op.key_on("by_user", clicks, lambda c: c.user)
    return op.key_rm("unkey_user", op.stateful_batch("user", keyed, UserHistory))


def events_wanted() -> int:
    return int(os.environ.get("PROTO_EVENTS", "300000"))


def workers_wanted() -> int:
    return int(os.environ.get("PROTO_WORKERS", "1"))


# --- running a flow in cluster mode ----------------------------------------------------------


def _free_ports(n: int) -> list[int]:
    ports = []
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def run_cluster(
    flow_ref: str, processes: int, events: int, extra_env: dict[str, str] | None = None
) -> dict[str, float]:
    """Run `module:get_flow` as `processes` one-worker processes; events/s and outputs."""
    out = Path(os.environ.get("TMPDIR", "/tmp")) / f"proto-{os.getpid()}-{time.time_ns()}"
    out.mkdir()
    env = {
        **os.environ,
        "PROTO_OUT": str(out),
        "PROTO_EVENTS": str(events),
        "PROTO_WORKERS": str(processes),
        **(extra_env or {}),
    }
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    command = [sys.executable, "-m", "bytewax.run", flow_ref]
    if processes == 1:
        procs = [subprocess.Popen(command, env=env, cwd=root)]
    else:
        addresses = ";".join(f"localhost:{p}" for p in _free_ports(processes))
        procs = [
            subprocess.Popen([*command, "-i", str(i), "-a", addresses], env=env, cwd=root)
            for i in range(processes)
        ]
    cpu = []
    for proc in procs:  # wait4: each process's own CPU seconds, whatever else ran meanwhile
        _pid, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            raise RuntimeError(f"{flow_ref} failed with {processes} processes")
        cpu.append(usage.ru_utime + usage.ru_stime)
    read = {p.stem: json.loads(p.read_text()) for p in out.glob("*.json")}
    start = min(v for k, v in read.items() if k.startswith("start-"))
    end = max(v for k, v in read.items() if k.startswith("end-"))
    outputs = sum(v for k, v in read.items() if k.startswith("outputs-"))
    return {
        "events_per_s": events / (end - start),
        "seconds": end - start,
        "outputs": outputs,
        "cpu_s": sum(cpu),  # start-up included: subtract a tiny run's (`cpu_per_event`)
        "cpu_max_s": max(cpu),
    }


def cpu_per_event(
    flow_ref: str, processes: int, events: int, env: dict[str, str]
) -> tuple[dict[str, float], float, float]:
    """A run, and its CPU µs per event in all processes and in the busiest one, less what a
    run of 2,000 events costs (imports, data, cluster start).

    On a shared machine the wall-clock rate of 2 processes depends on what else runs; CPU
    time per event does not, and the busiest process's share bounds the rate on idle cores.
    """
    tiny = run_cluster(flow_ref, processes, 2000, env)
    full = run_cluster(flow_ref, processes, events, env)
    n = events - 2000
    total = (full["cpu_s"] - tiny["cpu_s"]) / n * 1e6
    busiest = (full["cpu_max_s"] - tiny["cpu_max_s"]) / n * 1e6
    return full, total, busiest


def main_for(flow_ref: str) -> None:
    """`python -m benchmarks.prototypes.<option> [EVENTS]`: 1 then 2 processes, side by side."""
    events = int(sys.argv[1]) if len(sys.argv) > 1 else 300_000
    rates = {}
    for processes in (1, 2):
        result = run_cluster(flow_ref, processes, events)
        rates[processes] = result["events_per_s"]
        print(
            f"{flow_ref} processes={processes}: {result['events_per_s']:,.0f} events/s "
            f"({result['seconds']:.1f} s, {result['outputs']:,} outputs)",
            flush=True,
        )
    print(f"{flow_ref} 2/1 = {rates[2] / rates[1]:.2f}x")


# --- checking `worker_of` against Bytewax itself ---------------------------------------------


def check_routing(workers: int = 2) -> int:
    """Route 204 keys through a real keyed step on `workers` worker threads and count the keys
    that landed elsewhere than `worker_of` says (0 expected)."""
    import threading

    from bytewax.testing import TestingSink, cluster_main

    keys = [f"k{i}" for i in range(200)] + ["models", "shard:0", "user-42", "é"]
    thread_worker: dict[int, int] = {}

    class _Keys(StatelessSourcePartition[str]):
        def __init__(self, worker: int) -> None:
            self.worker, self.done = worker, False

        def next_batch(self) -> list[str]:
            thread_worker[threading.get_ident()] = self.worker
            if self.done:
                raise StopIteration
            self.done = True
            return keys if self.worker == 0 else []

    class _Source(DynamicSource[str]):
        def build(self, step_id: str, worker_index: int, worker_count: int) -> _Keys:
            return _Keys(worker_index)

    seen: list[tuple[str, int]] = []
    flow = Dataflow("routing_check")
    keyed = op.key_on("key", op.input("in", flow, _Source()), lambda k: k)
    landed = op.stateful_map("where", keyed, lambda _s, _v: (None, threading.get_ident()))
    op.output("out", landed, TestingSink(seen))
    cluster_main(flow, [], 0, worker_count_per_proc=workers)
    return sum(thread_worker[tid] != worker_of(key, workers) for key, tid in seen)


if __name__ == "__main__":
    print(f"keys routed elsewhere than worker_of says: {check_routing()}")
