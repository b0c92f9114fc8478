"""Option B: co-occurrence rows partitioned by item over shard keys, scatter and gather.

    python -m benchmarks.prototypes.option_b [EVENTS]   # 1 then 2 processes, cluster mode

Source → user history (keyed by user) → `scatter` (a flat_map): one message per shard a
click touches, to `shard:<k>` (k = crc32(item) % SHARDS, 8 keys spread evenly over 1, 2 and
4 workers by `common.balanced_keys`). A message carries the row updates that shard owns
(row `item` += previous items, row `p` += item, both ways as `CoOccurrence.add` does) and,
at the user's last click of the batch, the user's recent items the shard owns, for serving.
Each shard (`ShardRows`, one direction of `CoOccurrence` over the per-row `Neighbours` of
its time, kept in `tests/state/cooc_reference.py`) learns, then scores from its rows: recency
weight x count(h)^(alpha-1) x cooc(h, j), and
returns its best DEPTH candidates to the user's key (`gather`, keyed by user again), which
sums the partials, drops the history and keeps the top K. Two exchanges per click: scatter
and gather. The candidate normaliser count(j)^-alpha lives on j's shard, so this prototype
scores with alpha = 0 (option C fetches it from a replicated popularity table).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import bytewax.operators as op
import numpy as np
from bytewax.dataflow import Dataflow
from bytewax.operators import StatefulBatchLogic

from benchmarks.prototypes.baseline import K
from benchmarks.prototypes.common import (
    Click,
    CountSink,
    balanced_keys,
    events_wanted,
    main_for,
    user_step,
)
from tests.state.cooc_reference import Neighbours

SHARDS = 8
SHARD_KEYS = balanced_keys("shard:", SHARDS)
DEPTH = 50
WINDOW = 10


def shard_of(item: str) -> int:
    return zlib.crc32(item.encode()) % SHARDS


@dataclass  # plain: a frozen slots dataclass costs ~3x more to cross processes (exchange.py)
class ToShard:
    """What one click asks of one shard: rows to update, and (when serving) items to score."""

    user: str
    version: float
    rows: tuple[tuple[str, tuple[str, ...], bool], ...]  # (row item, others, counts as a click)
    score: tuple[tuple[str, float], ...] = ()  # (history item this shard owns, recency weight)
    parts: int = 0  # how many shards answer this serve request
    item: str = ""  # the click's item (the gather tests the user's last list with it)


@dataclass  # plain: a frozen slots dataclass costs ~3x more to cross processes (exchange.py)
class Partial:
    version: float
    parts: int
    candidates: tuple[tuple[str, float], ...]
    item: str = ""


def recency(history: Sequence[str]) -> dict[str, float]:
    """`CoOccurrence._weights`: 1 / (1 + age) over the last WINDOW distinct items."""
    return {h: 1.0 / (1.0 + age) for age, h in enumerate(reversed(history[-WINDOW:]))}


def scatter(click: Click, serve: bool) -> list[tuple[str, ToShard]]:
    """One message per shard this click touches (learning) or asks (serving)."""
    previous = tuple(p for p in click.previous[-WINDOW:] if p != click.item)
    rows: dict[int, list[tuple[str, tuple[str, ...], bool]]] = {}
    rows.setdefault(shard_of(click.item), []).append((click.item, previous, True))
    for p in previous:
        rows.setdefault(shard_of(p), []).append((p, (click.item,), False))
    score: dict[int, list[tuple[str, float]]] = {}
    if serve:
        for h, w in recency((*click.previous, click.item)).items():
            score.setdefault(shard_of(h), []).append((h, w))
    parts = len(score)
    return [
        (
            SHARD_KEYS[s],
            ToShard(
                click.user,
                click.ts,
                tuple(rows.get(s, ())),
                tuple(score.get(s, ())),
                parts,
                click.item,
            ),
        )
        for s in sorted(set(rows) | set(score))
    ]


@dataclass
class ShardRows:
    """Rows of the items one shard owns: neighbour counts (one direction) and click counts."""

    index: dict[str, int] = field(default_factory=dict)
    ids: list[str] = field(default_factory=list)
    rows: dict[str, Neighbours] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def _id(self, item: str) -> int:
        i = self.index.get(item)
        if i is None:
            i = self.index[item] = len(self.ids)
            self.ids.append(item)
        return i

    def learn(self, row: str, others: tuple[str, ...], click: bool) -> None:
        if click:
            self.counts[row] = self.counts.get(row, 0) + 1
        neighbours = self.rows.get(row)
        if neighbours is None:
            neighbours = self.rows[row] = Neighbours()
        for other in others:
            neighbours.add(self._id(other), 1)
        if len(neighbours) > 600:
            neighbours.prune(300, self.ids.__getitem__)

    def candidates(self, score: tuple[tuple[str, float], ...]) -> tuple[tuple[str, float], ...]:
        """Best DEPTH (item, partial score) from these rows, alpha = 0: P(j | h) weighted."""
        parts, factors = [], []
        for h, w in score:
            n = self.rows.get(h)
            if n is None or not len(n) or not self.counts.get(h):
                continue
            parts.append(n.view())
            factors.append(w / self.counts[h])
        if not parts:
            return ()
        rows = np.concatenate([r for r, _ in parts])
        sizes = [len(r) for r, _ in parts]
        scores = np.concatenate([c for _, c in parts]) * np.repeat(factors, sizes)
        uniq, where = np.unique(rows, return_inverse=True)
        summed = np.bincount(where, scores)
        best = np.argsort(-summed, kind="stable")[:DEPTH]
        return tuple((self.ids[int(uniq[b])], float(summed[b])) for b in best)


class Shard(StatefulBatchLogic[ToShard, tuple[str, Partial], ShardRows]):
    def __init__(self, resume: ShardRows | None) -> None:
        self.rows = resume or ShardRows()

    def on_batch(self, values: list[ToShard]) -> tuple[list[tuple[str, Partial]], bool]:
        out = []
        for m in values:
            for row, others, click in m.rows:
                self.rows.learn(row, others, click)
            if m.score:
                out.append((m.user, Partial(m.version, m.parts, self.rows.candidates(m.score))))
        return out, StatefulBatchLogic.RETAIN

    def snapshot(self) -> ShardRows:
        return self.rows


class Gather(StatefulBatchLogic[Partial, tuple[str, list[str]], dict[float, list[Partial]]]):
    """Waits for every shard's partial of a serve request, sums them, keeps the top K."""

    def __init__(self, resume: dict[float, list[Partial]] | None) -> None:
        self.pending = resume or {}

    def on_batch(self, values: list[Partial]) -> tuple[list[tuple[str, list[str]]], bool]:
        out = []
        for p in values:
            got = self.pending.setdefault(p.version, [])
            got.append(p)
            if len(got) == p.parts:
                del self.pending[p.version]
                out.append(("", top(got, K)))
        return out, (StatefulBatchLogic.RETAIN if self.pending else StatefulBatchLogic.DISCARD)

    def snapshot(self) -> dict[float, list[Partial]]:
        return dict(self.pending)


def top(partials: list[Partial], k: int, exclude: frozenset[str] = frozenset()) -> list[str]:
    summed: dict[str, float] = {}
    for p in partials:
        for item, score in p.candidates:
            summed[item] = summed.get(item, 0.0) + score
    ranked = sorted(summed.items(), key=lambda kv: (-kv[1], kv[0]))
    return [item for item, _ in ranked if item not in exclude][:k]


def scattered(flow: Dataflow):  # type: ignore[no-untyped-def]
    """The click stream scattered to the shards (each user's last click of a batch served)."""
    clicks = user_step(flow, events_wanted())
    return op.flat_map("scatter", clicks, lambda c: scatter(c, c.last))


def _second(kv: tuple[str, tuple[str, Partial]]) -> tuple[str, Partial]:
    """A shard's (shard key, (user, partial)) → (user, partial): re-keyed for the gather."""
    return kv[1]


def get_flow() -> Dataflow:
    flow = Dataflow("proto_b")
    partials = op.map("to_user", op.stateful_batch("shard", scattered(flow), Shard), _second)
    op.output("out", op.stateful_batch("gather", partials, Gather), CountSink())
    return flow


if __name__ == "__main__":
    main_for("benchmarks.prototypes.option_b:get_flow")
