"""Rescaling: a recovery store written by M workers resumes with N (design step 7).

Bytewax moves per-key state by itself: the store's partition count is fixed, the worker count
is not, and on a resume every key's snapshot goes to the worker its key now hashes to (each
user's state, last list and live test; each source partition's position). What it cannot do
is make model replicas: there is one per worker (`tailor.operators.replicas`, keys
`replica_keys(n)`), so a store written by M workers holds M of them and a run of N needs N.

Every replica at an epoch's end has learned the same events (each worker's batch reaches
every replica in the epoch it was read, and Bytewax snapshots a step only once all of an
epoch's input is in), in different orders. So each new replica starts as a copy of
`replica:0`, a key every worker count has. What replicas do not share is whose outputs each
must still settle (the settle points of its own users, `tailor.state.segments.segmentation`): those
are pooled and each goes to the replica that owns the user under the new count. Replicas no
longer used are discarded.

The rows are written by Bytewax itself, so each lands in the partition Bytewax's own hash
picks and the store records the new worker count: a one-step flow with the replica step's
id resumes the store with N workers and hands each replica key its new snapshot.
"""

from __future__ import annotations

import gc
import pickle
import sqlite3
from collections.abc import Callable, Mapping
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import bytewax.operators as op
from bytewax.dataflow import Dataflow, Stream, operator
from bytewax.inputs import DynamicSource, StatelessSourcePartition
from bytewax.operators import KeyedStream, StatefulBatchLogic
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from bytewax.recovery import RecoveryConfig
from bytewax.run import cli_main

from tailor.flows.config import ConfigError
from tailor.flows.recovery import partition_files
from tailor.operators.aging import dealt_keys
from tailor.operators.bases import StoredBases
from tailor.operators.models import ModelsState
from tailor.operators.redis.routing import replica_keys, worker_of
from tailor.state import increments, snapshots
from tailor.state.segments.aging import redistribute

__all__ = [
    "BASES_STEP",
    "REPLICA_STEP",
    "SWEEP_STEP",
    "Rescale",
    "base_loader",
    "drop_unfinished",
    "refuse_other_workers",
    "replica_models",
    "rescale_store",
    "rescaled",
    "resume_epoch",
    "written_workers",
]

#: The replica step's id in `tailor.flows.worker.build_flow` (checked by a test).
REPLICA_STEP = "tailor.models.replica"
#: The step holding the replicas' model bases (`tailor.operators.bases`).
BASES_STEP = "tailor.models.bases"
#: The aging sweep's step (`tailor.operators.aging`): one per worker too, keyed like the replicas.
SWEEP_STEP = "tailor.aging.sweep"
#: The key every worker count's replica set has (`replica_keys(n)` starts its search there).
SOURCE_KEY = "replica:0"

#: A replica key's new snapshot, or None: the key is no longer used.
Plan = dict[str, bytes | None]


@dataclass(frozen=True)
class Rescale:
    """What one rescale did."""

    before: int
    after: int
    replicas: int
    settles: int

    def describe(self, store: Path) -> str:
        return (
            f"recovery store {store} rescaled from {self.before} to {self.after} worker(s): "
            f"{self.replicas} model replica(s) from {SOURCE_KEY}, {self.settles} pending "
            "settlement(s) handed to their users' new workers"
        )


def _query(path: Path, sql: str, *args: object) -> list[tuple[object, ...]]:
    uri = f"file:{path}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True, timeout=5.0)) as conn:
        return conn.execute(sql, args).fetchall()


def _executions(store: Path) -> tuple[int, int, int, dict[int, int]] | None:
    """(execution, worker count, its resume epoch, worker -> frontier) of the store's last
    execution, from every partition's `exs` and `fronts` (None for a store never run)."""
    exs: list[tuple[int, int, int]] = []
    fronts: list[tuple[int, int, int]] = []
    for path in partition_files(store):
        exs += _query(path, "SELECT ex_num, worker_count, resume_epoch FROM exs")  # type: ignore[arg-type]
        fronts += _query(path, "SELECT ex_num, worker_index, worker_frontier FROM fronts")  # type: ignore[arg-type]
    if not exs:
        return None
    ex, workers, epoch = max(exs)
    progress: dict[int, int] = {}
    for ex_num, worker, frontier in fronts:
        if ex_num == ex:
            progress[worker] = max(progress.get(worker, frontier), frontier)
    return ex, workers, epoch, progress


def written_workers(store: Path) -> int | None:
    """The worker count of the store's last run (None for a store never run)."""
    last = _executions(store)
    return None if last is None else last[1]


def refuse_other_workers(store: Path, workers: int) -> None:
    """Stop a run of another worker count on a store with replicas it cannot rebuild now
    (another process of the cluster has the store open), in one line saying what to do."""
    written = written_workers(store)
    if written is None or written == workers:
        return
    sql = "SELECT 1 FROM snaps WHERE state_key LIKE 'replica:%' LIMIT 1"
    if any(_query(path, sql) for path in partition_files(store)):
        raise ConfigError(
            f"recovery.dir: {store} was written by {written} worker(s), this run has "
            f"{workers}, and another process has the store open: stop every worker, run "
            "`tailor store rescale` with the new [cluster] settings, then start them"
        )


def resume_epoch(store: Path) -> int | None:
    """The epoch Bytewax resumes from: the slowest worker's frontier in the last execution
    (its `resume_from`, `src/recovery.rs`); state snapshotted before it is what loads."""
    last = _executions(store)
    if last is None:
        return None
    _ex, workers, epoch, progress = last
    return min(max(epoch, progress.get(w, epoch)) for w in range(workers))


def replica_rows(store: Path, before: int) -> dict[str, bytes]:
    """Each replica key's snapshot as a resume before epoch `before` would load it (its
    newest row before that epoch; a key whose newest row is a tombstone is left out)."""
    return step_rows(store, REPLICA_STEP, before)


def base_loader(store: Path) -> Callable[[str], bytes | None]:
    """Reads a model base as a resume of `store` now would load it: the key's newest row
    before the resume epoch (None when there is none, or it is a tombstone). Made before
    Bytewax opens the store, which then records a new execution."""
    epoch = resume_epoch(store)

    def load(key: str) -> bytes | None:
        if epoch is None:
            return None
        return step_rows(store, BASES_STEP, epoch, key).get(key)

    return load


def step_rows(store: Path, step: str, before: int, only: str | None = None) -> dict[str, bytes]:
    """The newest row before epoch `before` of every key of `step` (or of the key `only`)."""
    newest: dict[str, tuple[int, bytes | None]] = {}
    sql = "SELECT state_key, snap_epoch, ser_change FROM snaps WHERE step_id = ? AND snap_epoch < ?"
    args: tuple[object, ...] = (step, before)
    if only is not None:
        sql, args = f"{sql} AND state_key = ?", (step, before, only)
    for path in partition_files(store):
        for key, epoch, blob in _query(path, sql, *args):
            assert isinstance(key, str) and isinstance(epoch, int)
            if key not in newest or epoch > newest[key][0]:
                newest[key] = (epoch, blob)  # type: ignore[assignment]
    return {key: pickle.loads(blob) for key, (_e, blob) in newest.items() if blob is not None}


def decoder(bases: Callable[[str], bytes | None] | None) -> Callable[[bytes], ModelsState]:
    """Turns a replica row into its models, reading the bases it names through `bases`."""
    stored = StoredBases(bases or (lambda _key: None))

    def decoded(blob: bytes) -> ModelsState:
        with increments.reading(stored):
            return ModelsState.from_snapshot(snapshots.decode(blob, "models"))

    return decoded


def replica_models(store: Path) -> dict[str, ModelsState]:
    """Each replica's models as a resume of `store` now would load them (none: empty)."""
    epoch = resume_epoch(store)
    if epoch is None:
        return {}
    decoded = decoder(base_loader(store))
    return {key: decoded(blob) for key, blob in replica_rows(store, epoch).items()}


def rescaled(
    rows: Mapping[str, bytes], workers: int, bases: Callable[[str], bytes | None] | None = None
) -> tuple[Plan, int]:
    """The replica snapshots for `workers` workers from the old ones, and how many pending
    settlements moved: see the module docstring. The new snapshots hold their models whole
    (the old bases are read through `bases`); the new replicas take new bases as they run."""
    if SOURCE_KEY not in rows:
        raise ValueError(f"no snapshot of {SOURCE_KEY} to copy the models from")
    _decoded = decoder(bases)
    keys = replica_keys(workers)
    settles = [p for blob in rows.values() for p in _decoded(blob).segments.take_settles()]
    plan: Plan = {key: None for key in rows if key not in keys}
    for key in keys:
        state = _decoded(rows[SOURCE_KEY])
        state.segments.take_settles()
        owned = [p for p in settles if keys[worker_of(p[4].user_id, workers)] == key]
        state.segments.put_settles(owned)
        plan[key] = snapshots.encode("models", state.to_snapshot())
    return plan, len(settles)


def sweep_plan(rows: Mapping[str, bytes], workers: int) -> Plan:
    """The aging sweeps' snapshots for `workers` workers: each user and partition goes to the
    sweep of the worker that reads the partition now (`tailor.state.segments.aging.redistribute`), a
    batch
    still held with it; sweeps no longer used are discarded."""
    decoded = [snapshots.decode(blob, "sweep") for blob in rows.values()]
    origins = sorted({o for d in decoded for o in d["sweep"]["partitions"] if o})
    dealt, keys = dealt_keys(origins, workers), replica_keys(workers)

    def key_of(origin: str) -> str:
        return dealt.get(origin, keys[0])

    held: dict[str, list[object]] = {}
    for d in decoded:
        for batch in d["held"]:
            held.setdefault(key_of(batch[0][0]), []).append(batch)
    new = redistribute((d["sweep"] for d in decoded), key_of)
    plan: Plan = {key: None for key in rows if key not in new}
    for key, sweep in new.items():
        plan[key] = snapshots.encode("sweep", {"sweep": sweep, "held": held.get(key, [])})
    return plan


class _Adopt(StatefulBatchLogic[bytes | None, None, bytes]):
    """A replica key's state replaced by what the plan says (None: discarded)."""

    def __init__(self, resume: bytes | None) -> None:
        self.blob = resume

    def on_batch(self, values: list[bytes | None]) -> tuple[list[None], bool]:
        self.blob = values[-1]
        return [], StatefulBatchLogic.DISCARD if self.blob is None else StatefulBatchLogic.RETAIN

    def snapshot(self) -> bytes:
        assert self.blob is not None
        return self.blob


class _Once(StatelessSourcePartition[tuple[str, bytes | None]]):
    def __init__(self, items: list[tuple[str, bytes | None]]) -> None:
        self._items: list[tuple[str, bytes | None]] | None = items

    def next_batch(self) -> list[tuple[str, bytes | None]]:
        if self._items is None:
            raise StopIteration
        out, self._items = self._items, None
        return out


class _PlanSource(DynamicSource[tuple[str, bytes | None]]):
    """The plan, read once, on worker 0 (a dynamic source keeps no position in the store)."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Once:
        return _Once(sorted(self.plan.items()) if worker_index == 0 else [])


class _Nowhere(StatelessSinkPartition[None]):
    def write_batch(self, items: list[None]) -> None:
        pass


class _NoSink(DynamicSink[None]):
    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Nowhere:
        return _Nowhere()


@operator
def _models(step_id: str, up: KeyedStream[bytes | None]) -> Stream[None]:
    """Named like the worker's models step, so the inner step's id is `REPLICA_STEP`."""
    return op.key_rm("unkey", op.stateful_batch("replica", up, _Adopt))


@operator
def _aging(step_id: str, up: KeyedStream[bytes | None]) -> Stream[None]:
    """Named like the worker's aging step, so the inner step's id is `SWEEP_STEP`."""
    return op.key_rm("unkey", op.stateful_batch("sweep", up, _Adopt))


def rewrite_flow(plan: Plan, sweeps: Plan | None = None) -> Dataflow:
    """The flow that writes `plan` into a store as the worker's replica step (and `sweeps`
    as its aging step)."""
    flow_id, models_id, _step = REPLICA_STEP.split(".")
    flow = Dataflow(flow_id)
    items = op.input("rescale_plan", flow, _PlanSource(plan))
    keyed = op.map_value("value", op.key_on("key", items, lambda kv: kv[0]), lambda kv: kv[1])
    done = _models(models_id, keyed)
    if sweeps:
        aging_id = SWEEP_STEP.split(".")[1]
        rows = op.input("sweep_plan", flow, _PlanSource(sweeps))
        by_key = op.map_value(
            "sweep_value", op.key_on("sweep_key", rows, lambda kv: kv[0]), lambda kv: kv[1]
        )
        done = op.merge("both", done, _aging(aging_id, by_key))
    op.output("nowhere", done, _NoSink())
    return flow


def rescale_store(store: Path, workers: int) -> Rescale | None:
    """Rewrite `store`'s model replicas for `workers` workers (None: nothing to do). Run it
    with every worker stopped (the caller holds the store exclusively)."""
    before = written_workers(store)
    epoch = resume_epoch(store)
    if before is None or epoch is None or before == workers:
        return None
    rows = replica_rows(store, epoch)
    if not rows:
        return None
    plan, settles = rescaled(rows, workers, base_loader(store))
    sweeps = sweep_plan(step_rows(store, SWEEP_STEP, epoch), workers)
    drop_unfinished(store, epoch)  # done at every start too (`tailor.flows.store`): never skip it
    flow = rewrite_flow(plan, sweeps)
    cli_main(flow, workers_per_process=workers, recovery_config=RecoveryConfig(store))
    gc.collect()  # Bytewax's connections to the store close when its objects go
    _delete_step(store, BASES_STEP)  # the new snapshots hold the models whole
    return Rescale(before, workers, workers, settles)


def _delete_step(store: Path, step: str) -> None:
    for path in partition_files(store):
        with closing(sqlite3.connect(path, timeout=5.0, isolation_level=None)) as conn:
            conn.execute("DELETE FROM snaps WHERE step_id = ?", (step,))


def drop_unfinished(store: Path, epoch: int) -> int:
    """Delete the snapshots of epochs from `epoch` (the resume epoch) on: a killed run wrote
    them for epochs not every worker finished, and a resume does those epochs again. Bytewax
    leaves them; a key the resumed run does not rewrite keeps its stale row, which loads once
    the run's epochs pass it (after a second crash; at once after the rewrite flow, which
    touches only the replicas): source positions and user state of an unfinished epoch."""
    dropped = 0
    for path in partition_files(store):
        with closing(sqlite3.connect(path, timeout=5.0, isolation_level=None)) as conn:
            dropped += conn.execute("DELETE FROM snaps WHERE snap_epoch >= ?", (epoch,)).rowcount
    return dropped
