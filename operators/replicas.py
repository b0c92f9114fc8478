"""The models as replicas: one copy per worker, each learning everyone's updates and serving
its own users (docs/design/scale-out.md, sections 7 and 8).

The models step used to sit on one constant key, hence on one worker, however many ran. Now
its input is keyed on `replica_keys(n)[w]`, where w is the worker that already holds the
item's user (`tailor.operators.redis.routing.worker_of`), so an update crosses no process there. Per
Bytewax batch, `collect` packs its worker's items into one tuple; a `flat_map` sends one copy
to every replica key (the broadcast Bytewax lacks: N-1 records cross per batch, not per
update); `replica` (a second step, a DAG has no feedback edge) applies its OWN copy as the
single models step did (learning, tests, drafts, settlements, erasures forwarded: exactly
today's outputs with one worker) and the others' copies as learning only
(`ModelsLogic.learn_remote`). The others' updates reach a replica a batch or so late; its
own never wait (design section 5: delaying them costs quality).

What every replica holds the same: every update and every `Progress` stamp reaches every
replica, and the segment model learns in one event-time order over all partitions
(`tailor.state.segments.event_order`), so all replicas hold the one segmentation a single worker
would. Only a user's own replica settles that user's outputs, and only the first replica publishes
segment news and the lists for users without history (`tailor.operators.fallbacks`). The
recommenders learn in arrival order, which differs per replica and per worker count: lists
are not equal across worker counts.

`Progress` marks go to the replica of their source partition's name, `Block`s to the first:
both reach every replica through the fan-out, as do `Erasure`s (with the user's history).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import bytewax.operators as op
from bytewax.dataflow import Stream, operator
from bytewax.operators import KeyedStream, StatefulBatchLogic

from tailor.operators.bases import BaseCut, KeepBase, ReplicaBases, StoredBases
from tailor.operators.metrics import MODEL_CPU, MODEL_UPDATES, SNAPSHOT
from tailor.operators.model_params import ModelParams
from tailor.operators.models import ModelsIn, ModelsLogic, ModelsOut, ModelsState, RemoteIn
from tailor.operators.progress import dropped
from tailor.operators.records import Aged, Block, Erasure, Learned, Progress, UserUpdate
from tailor.operators.redis.routing import replica_keys, worker_of
from tailor.state import increments
from tailor.state.crossing import crossing
from tailor.state.segments.rules import RuleSet
from tailor.state.segments.segmentation import learn_point

__all__ = ["Copy", "RemoteIn", "ReplicaLogic", "learned", "models", "replicated_models"]


@crossing
@dataclass(frozen=True, slots=True)
class Copy:
    """One worker's batch of model input as one replica receives it.

    `own`: the batch came from this replica's worker (serve it), and `items` are its updates
    as they are; else each update is cut down to what learning reads (`Learned`). `lead`:
    this replica is the first, which publishes segment news and the lists.
    """

    own: bool
    lead: bool
    items: tuple[ModelsIn, ...] | tuple[RemoteIn, ...]
    replica: str = ""  # the key of the replica it is for (where the replica's bases go)


class _Collect(StatefulBatchLogic[ModelsIn, tuple[ModelsIn, ...], None]):
    """Packs a batch of one worker's model input into one record (no state)."""

    def on_batch(self, values: list[ModelsIn]) -> tuple[Iterable[tuple[ModelsIn, ...]], bool]:
        return [tuple(values)], StatefulBatchLogic.DISCARD

    def snapshot(self) -> None:
        return None


class ReplicaLogic(StatefulBatchLogic[Copy, ModelsOut | BaseCut, bytes]):
    """One worker's copy of the models: its own batches first, as the one models step did.

    With recovery, its large components are snapshotted as bases plus changes
    (`tailor.operators.bases`); without it, Bytewax still asks for a snapshot every epoch and throws
    it away, so none is made (`ModelParams.snapshots`).
    """

    def __init__(
        self, params: ModelParams, resume_state: ModelsState | bytes | None, workers: int = 1
    ) -> None:
        self.snapshots = params.snapshots
        stored = None if params.base_loader is None else StoredBases(params.base_loader)
        with increments.reading(stored if stored is not None else {}):
            self.models = ModelsLogic(params, resume_state)
        self.models.publishes = None  # a copy says whether this replica is the first
        self.bases = None if stored is None else ReplicaBases(workers, stored)

    def on_batch(self, values: list[Copy]) -> tuple[Iterable[ModelsOut | BaseCut], bool]:
        out: list[ModelsOut | BaseCut] = []
        for copy in sorted(values, key=lambda c: not c.own):  # stable: arrival order kept
            self.models.publishes = copy.lead
            started = time.thread_time()
            if copy.own:
                emitted, _ = self.models.on_batch(list(copy.items))  # type: ignore[arg-type]
                out.extend(emitted)
            else:
                out.extend(self.models.learn_remote(copy.items))  # type: ignore[arg-type]
            work = "own" if copy.own else "remote"
            MODEL_CPU.labels(work).inc(time.thread_time() - started)
            MODEL_UPDATES.labels(work).inc(len(copy.items))
        if self.bases is not None:
            self.bases.replica = self.bases.replica or values[0].replica or None
            out.extend(self.bases.due())
        return out, StatefulBatchLogic.RETAIN

    def on_eof(self) -> tuple[Iterable[ModelsOut | BaseCut], bool]:
        out, complete = self.models.on_eof()
        if self.bases is None:
            return out, complete
        return [*out, *self.bases.at_eof()], complete

    def notify_at(self) -> datetime | None:
        return self.models.notify_at()

    def on_notify(self) -> tuple[Iterable[ModelsOut | BaseCut], bool]:
        return self.models.on_notify()

    def snapshot(self) -> bytes:
        """The models' snapshot, timed into `tailor_snapshot_seconds{state="models"}`."""
        if not self.snapshots:
            return b""
        started = time.perf_counter()
        if self.bases is None:
            blob = self.models.snapshot()
        else:
            with increments.writing(self.bases.writing):
                blob = self.models.snapshot()
        SNAPSHOT.labels("models").observe(time.perf_counter() - started)
        return blob


def replica_of(workers: int) -> Callable[[ModelsIn], str]:
    """The replica key an item goes to: its user's worker's (no exchange), see the module."""
    keys = replica_keys(workers)

    def key(item: ModelsIn) -> str:
        if isinstance(item, UserUpdate | Erasure | Aged):
            return keys[worker_of(item.user_id, workers)]
        if isinstance(item, Progress):
            return keys[worker_of(item.stamp.origin, workers)]
        assert isinstance(item, Block)
        return keys[0]

    return key


def learned(update: UserUpdate, window: int, learn_every: int) -> Learned:
    """The update as another replica learns it: the `window` items before its own, features
    only at a segment learn point (design section 8: crossing is what replicas pay for)."""
    event, item = update.event, update.event.item_id
    history = update.history
    previous = history[:-1] if item is not None and history and history[-1] == item else history
    keep = learn_point(update.version, event.type, learn_every)
    return Learned(
        update.user_id,
        update.version,
        event.ts,
        event.type,
        item,
        event.category,
        previous[-window:],
        update.features if keep else None,
        update.device,
        update.stamp,
    )


def _remote(item: ModelsIn, window: int, learn_every: int) -> RemoteIn | None:
    """An item as other replicas take it: an update cut to `Learned`; an aged profile, which
    only its own replica drafts, as the progress of its batch."""
    if isinstance(item, UserUpdate):
        return learned(item, window, learn_every)
    if isinstance(item, Aged):
        return dropped(item.stamp)  # moves no clock
    return item


def copies(
    workers: int, window: int, learn_every: int
) -> Callable[[tuple[str, tuple[ModelsIn, ...]]], list[tuple[str, Copy]]]:
    """Every replica gets a copy of each batch: its origin the batch as it is, the others one
    shared copy with each update cut down to `Learned` (`window` items of history)."""
    keys: Sequence[str] = replica_keys(workers)
    lead = keys[0]

    def fan_out(batch: tuple[str, tuple[ModelsIn, ...]]) -> list[tuple[str, Copy]]:
        origin, items = batch
        out = [(origin, Copy(True, origin == lead, items, origin))]
        if workers > 1:
            cut = (_remote(item, window, learn_every) for item in items)
            remote = tuple(item for item in cut if item is not None)
            out += [(k, Copy(False, k == lead, remote, k)) for k in keys if k != origin]
        return out

    return fan_out


@operator
def replicated_models(
    step_id: str, up: Stream[ModelsIn], params: ModelParams, workers: int
) -> Stream[ModelsOut]:
    """Segments and recommendations for every changed user, from one replica per worker.

    :arg up: Updates, erasures, progress marks and item blocks, unkeyed.
    :arg workers: Bytewax workers in the cluster (`tailor.flows.settings.Settings.workers`, checked
    at
        run time by `tailor.operators.redis.routing.WorkerCountCheck`).
    :returns: What `tailor.operators.models.models` returns, unkeyed: per changed user a `ForUser`
        from the user's own replica, and segment news from the first replica.
    """
    RuleSet(params.segments.rules, params.rule_names())
    ModelsState.fresh(params)
    local = op.key_on("to_local", up, replica_of(workers))
    batches = op.stateful_batch("collect", local, lambda _resume: _Collect())
    fan_out = copies(workers, params.remote_window, params.segments.learn_every)
    fanned = op.flat_map("fan_out", batches, fan_out)
    replicas = op.stateful_batch(
        "replica", fanned, lambda resume: ReplicaLogic(params, resume, workers)
    )
    split = op.branch("bases?", op.key_rm("unkey", replicas), _is_base)
    cuts: Stream[BaseCut] = split.trues  # type: ignore[assignment]
    keyed_cuts = op.map("base_keys", cuts, lambda cut: (cut.key, cut.blob))
    op.stateful_batch("bases", keyed_cuts, KeepBase)
    return split.falses  # type: ignore[return-value]


def _is_base(item: ModelsOut | BaseCut) -> bool:
    return isinstance(item, BaseCut)


@operator
def models(step_id: str, up: KeyedStream[ModelsIn], params: ModelParams) -> KeyedStream[ModelsOut]:
    """The models on ONE key (one copy, one worker): the replica step without the fan-out.

    :arg up: Updates keyed on ONE constant key, so one logic owns the global models.
    :arg params: Model configuration; bad rules or clusterer params raise here, at flow build
        time (`RuleError` / `ValueError`), not on the first event.
    :returns: Still under the constant key: a `ForUser` per changed user per batch (split by
        the user's `Erasure`s, which follow in place) for `tailor.operators.user_outputs`, and
        `SegmentInfo` / `SegmentModel` when the segment model publishes.
    """
    RuleSet(params.segments.rules, params.rule_names())
    ModelsState.fresh(params)
    return op.stateful_batch("stateful_batch", up, lambda resume: ModelsLogic(params, resume))
