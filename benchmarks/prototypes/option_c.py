"""Option C: per-user model state with the user, item-partitioned co-occurrence, replicated
small models merged from deltas.

    python -m benchmarks.prototypes.option_c [EVENTS]   # 1 then 2 processes, cluster mode
    PROTO_MERGE_EVERY=5000 python -m benchmarks.prototypes.option_c   # merge less often

Option B's scatter → shards → gather, plus:

* a replicated small model, here every item's click count (the candidate normaliser
  count(j)^-alpha, which B could not have, and the popularity fill): per worker, `collect`
  (keyed `replica:<w>`, where the user already is) sums its clicks' item counts and, every
  PROTO_MERGE_EVERY local clicks (0: every batch), a flat_map sends one delta to every shard
  key, merged into the shards' input. Each shard keeps a full copy of the counts, stale by
  at most one merge for other workers' clicks. Cluster centres and RFM cut points would
  travel the same way (Flink ML's OnlineKMeans merges per-task centre updates likewise);
* the gather step, keyed by user, holds the user's per-user model state: the last list
  served and the prequential test of it (hits / tests), so it expires and is erased with
  the user.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import bytewax.operators as op
import numpy as np
from bytewax.dataflow import Dataflow
from bytewax.operators import StatefulBatchLogic

from benchmarks.prototypes.baseline import K
from benchmarks.prototypes.common import (
    Click,
    CountSink,
    events_wanted,
    main_for,
    user_step,
    workers_wanted,
)
from benchmarks.prototypes.option_b import DEPTH, SHARD_KEYS, Partial, ShardRows, ToShard, scatter
from tailor.operators.redis.routing import replica_keys, worker_of

ALPHA = 0.25


@dataclass  # plain: a frozen slots dataclass costs ~3x more to cross processes (exchange.py)
class CountDelta:
    """Item click counts one worker saw since its last merge (counts add)."""

    counts: tuple[tuple[str, int], ...]


@dataclass
class ShardState:
    rows: ShardRows = field(default_factory=ShardRows)
    popularity: dict[str, int] = field(default_factory=dict)  # the replica: every item

    def candidates(self, score: tuple[tuple[str, float], ...]) -> tuple[tuple[str, float], ...]:
        """Best DEPTH candidates with the default normaliser:
        cooc(h, j) * w / (count(h)^(1-alpha) * count(j)^alpha)."""
        parts, factors = [], []
        for h, w in score:
            n, count = self.rows.rows.get(h), self.rows.counts.get(h, 0)
            if n is None or not len(n) or not count:
                continue
            parts.append(n.view())
            factors.append(w * float(count) ** (ALPHA - 1.0))
        if not parts:
            return ()
        rows = np.concatenate([r for r, _ in parts])
        scores = np.concatenate([c for _, c in parts]) * np.repeat(
            factors, [len(r) for r, _ in parts]
        )
        uniq, where = np.unique(rows, return_inverse=True)
        summed = np.bincount(where, scores)
        ids, pop = self.rows.ids, self.popularity
        norm = np.array([max(pop.get(ids[int(u)], 1), 1) for u in uniq], np.float64) ** -ALPHA
        summed *= norm
        best = np.argsort(-summed, kind="stable")[:DEPTH]
        return tuple((ids[int(uniq[b])], float(summed[b])) for b in best)


class Shard(StatefulBatchLogic[ToShard | CountDelta, tuple[str, Partial], ShardState]):
    def __init__(self, resume: ShardState | None) -> None:
        self.state = resume or ShardState()

    def on_batch(
        self, values: list[ToShard | CountDelta]
    ) -> tuple[list[tuple[str, Partial]], bool]:
        out = []
        for m in values:
            if isinstance(m, CountDelta):
                pop = self.state.popularity
                for item, n in m.counts:
                    pop[item] = pop.get(item, 0) + n
                continue
            for row, others, click in m.rows:
                self.state.rows.learn(row, others, click)
            if m.score:
                partial = Partial(m.version, m.parts, self.state.candidates(m.score), m.item)
                out.append((m.user, partial))
        return out, StatefulBatchLogic.RETAIN

    def snapshot(self) -> ShardState:
        return self.state


class Collect(StatefulBatchLogic[Click, CountDelta, dict[str, int]]):
    """Sums local item counts; emits them as one delta every `every` clicks (0: every batch)."""

    def __init__(self, every: int, resume: dict[str, int] | None) -> None:
        self.every, self.counts, self.seen = every, resume or {}, 0

    def on_batch(self, values: list[Click]) -> tuple[list[CountDelta], bool]:
        for c in values:
            self.counts[c.item] = self.counts.get(c.item, 0) + 1
        self.seen += len(values)
        if self.seen < self.every:
            return [], StatefulBatchLogic.RETAIN
        delta, self.counts, self.seen = CountDelta(tuple(self.counts.items())), {}, 0
        return [delta], StatefulBatchLogic.RETAIN

    def snapshot(self) -> dict[str, int]:
        return dict(self.counts)


@dataclass
class UserModel:
    """A user's model state: the last list served and its prequential test."""

    shown: tuple[str, ...] = ()
    pending: dict[float, list[Partial]] = field(default_factory=dict)
    hits: int = 0
    tests: int = 0


class Gather(StatefulBatchLogic[Partial, tuple[str, list[str]], UserModel]):
    def __init__(self, resume: UserModel | None) -> None:
        self.user = resume or UserModel()

    def on_batch(self, values: list[Partial]) -> tuple[list[tuple[str, list[str]]], bool]:
        out = []
        for p in values:
            got = self.user.pending.setdefault(p.version, [])
            got.append(p)
            if len(got) < p.parts:
                continue
            del self.user.pending[p.version]
            if self.user.shown:  # test then train: was the clicked item in the last list?
                self.user.tests += 1
                self.user.hits += p.item in self.user.shown
            summed: dict[str, float] = {}
            for part in got:
                for item, score in part.candidates:
                    summed[item] = summed.get(item, 0.0) + score
            ranked = sorted(summed.items(), key=lambda kv: (-kv[1], kv[0]))
            self.user.shown = tuple(item for item, _ in ranked[:K])
            out.append(("", list(self.user.shown)))
        return out, StatefulBatchLogic.RETAIN

    def snapshot(self) -> UserModel:
        return self.user


def _second(kv: tuple[str, tuple[str, Partial]]) -> tuple[str, Partial]:
    return kv[1]


def _fan(kv: tuple[str, CountDelta]) -> list[tuple[str, CountDelta]]:
    return [(key, kv[1]) for key in SHARD_KEYS]


def get_flow() -> Dataflow:
    workers, every = workers_wanted(), int(os.environ.get("PROTO_MERGE_EVERY", "0"))
    replicas = replica_keys(workers)
    flow = Dataflow("proto_c")
    clicks = user_step(flow, events_wanted())
    local = op.key_on("to_local", clicks, lambda c: replicas[worker_of(c.user, workers)])
    deltas = op.stateful_batch("collect", local, lambda resume: Collect(every, resume))
    merged = op.flat_map("fan_out", deltas, _fan)
    scattered = op.flat_map("scatter", clicks, lambda c: scatter(c, c.last))
    shard_in = op.merge("with_counts", scattered, merged)
    partials = op.map("to_user", op.stateful_batch("shard", shard_in, Shard), _second)
    op.output("out", op.stateful_batch("gather", partials, Gather), CountSink())
    return flow


if __name__ == "__main__":
    main_for("benchmarks.prototypes.option_c:get_flow")
