"""Option A: the global model replicated on every worker, replicas synced by merged deltas.

    python -m benchmarks.prototypes.option_a [EVENTS]   # 1 then 2 processes, cluster mode

Source → user history (keyed by user) → `collect`, keyed `replica:<w>` where w is the worker
that already holds the user (`tailor.operators.redis.routing.worker_of`), so no click crosses a
process here. Per Bytewax batch, `collect` turns its worker's clicks into one delta (the
interactions to learn) plus the serve requests. A flat_map addresses one copy of the delta to every
replica key (the broadcast Bytewax lacks: N-1 items cross per batch, not per click); `replica`
(keyed
`replica:<w>` again, a second step because a DAG has no feedback edge) applies every delta it
receives, its own first, and serves its own users from its copy. Remote deltas arrive a
batch or so late: the replicas are stale by that much, and learning is done N times over.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.operators import StatefulBatchLogic

from benchmarks.prototypes.baseline import K, new_cooc
from benchmarks.prototypes.common import (
    Click,
    CountSink,
    events_wanted,
    main_for,
    user_step,
    workers_wanted,
)
from tailor.operators.redis.routing import replica_keys, worker_of
from tailor.state.recs.cooc_counts import CoOccurrence


@dataclass  # plain: a frozen slots dataclass costs ~3x more to cross processes (exchange.py)
class Delta:
    """One worker's batch: what every replica learns, and (for its own replica) whom to serve."""

    origin: str
    learn: tuple[tuple[tuple[str, ...], str], ...]  # (previous, item)
    serve: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (user, history)


class Collect(StatefulBatchLogic[Click, Delta, None]):
    """Packs a batch of local clicks into one delta (no learned state)."""

    def on_batch(self, values: list[Click]) -> tuple[list[Delta], bool]:
        serve = tuple((c.user, (*c.previous, c.item)) for c in values if c.last)
        learn = tuple((c.previous, c.item) for c in values)
        return [Delta("", learn, serve)], StatefulBatchLogic.DISCARD  # origin: see `tag`

    def snapshot(self) -> None:
        return None


class Replica(StatefulBatchLogic[tuple[bool, Delta], tuple[str, list[str]], CoOccurrence]):
    """One worker's copy of the model: learns every delta, serves its own users."""

    def __init__(self, resume: CoOccurrence | None) -> None:
        self.model = resume or new_cooc()

    def on_batch(
        self, values: list[tuple[bool, Delta]]
    ) -> tuple[list[tuple[str, list[str]]], bool]:
        out = []
        for _own, delta in sorted(values, key=lambda v: not v[0]):  # its own first
            for previous, item in delta.learn:
                self.model.add(previous, item)
            for user, history in delta.serve:
                recs = self.model.recommend(history, K, exclude=set(history))
                out.append((user, [item for item, _ in recs]))
        return out, StatefulBatchLogic.RETAIN

    def snapshot(self) -> CoOccurrence:
        return self.model


def copies(keys: Sequence[str]):  # type: ignore[no-untyped-def]
    """Every replica gets the learning; only the origin's replica gets the serve requests."""

    def fan_out(delta: Delta) -> list[tuple[str, tuple[bool, Delta]]]:
        own = delta.origin
        return [(k, (k == own, delta if k == own else Delta(own, delta.learn))) for k in keys]

    return fan_out


def get_flow() -> Dataflow:
    workers = workers_wanted()
    keys = replica_keys(workers)
    flow = Dataflow("proto_a")
    clicks = user_step(flow, events_wanted())
    local = op.key_on("to_local", clicks, lambda c: keys[worker_of(c.user, workers)])
    deltas = op.stateful_batch("collect", local, lambda _r: Collect())
    tagged = op.map("tag", deltas, lambda kv: Delta(kv[0], kv[1].learn, kv[1].serve))
    fanned = op.flat_map("fan_out", tagged, copies(keys))
    replicas = op.stateful_batch("replica", fanned, Replica)
    op.output("out", replicas, CountSink())
    return flow


if __name__ == "__main__":
    main_for("benchmarks.prototypes.option_a:get_flow")
