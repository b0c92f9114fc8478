"""Recall@10 on MovieLens when the global models are replicas merged every M events.

    python -m benchmarks.prototypes.stale_quality [--model hybrid] [--every 1000,10000]

A prequential replay (`tailor.flows.evaluate.replay`: test then train, history excluded) of
MovieLens latest-small in time order through `Replicated`: N replicas of the model (`build`
from `tailor.state.recs.settings`, default settings), user u served by replica crc32(u) % N. A
replica learns its own users' interactions at once and the others' only at a merge, every M
interactions, replayed in order (for counts this is the merged delta exactly; for ISGD's
factors it stands in for summed updates). `--shared cooc` keeps the named hybrid components
exact and common to all replicas, as option C's item-partitioned co-occurrence is (it learns
every interaction when it happens); the rest (ISGD, category and segment trending, trending,
popularity) stay replicated. A hybrid's self-test probes an interaction once, in its user's
replica (a late replay into another replica teaches the components but does not probe, or
the probe would see a model that already learned the answer), and its statistics are one
table all replicas add to (counts add: merged exactly). `--own-late` delays a replica's own
users' interactions to the merge too, as learning at event-time ticks does (the chosen
design, where every click is learned when its tick closes); with `--replicas 1` that is one
model learning in blocks of M. Not a timing: run it with `nice`.
"""

from __future__ import annotations

import argparse
import csv
import zlib
from collections.abc import Callable, Collection, Sequence
from typing import Any

from benchmarks.prototypes.common import DATA
from tailor.flows.config import shipped
from tailor.flows.evaluate import replay, settings_of
from tailor.state.recs.base import Interaction, Recommender, Scored
from tailor.state.recs.hybrid import Hybrid
from tailor.state.recs.settings import build

Pending = tuple[Interaction, tuple[str, ...], frozenset[str]]


class _Shared:
    """A component every replica reads but none teaches: `Replicated` teaches it once."""

    def __init__(self, model: Recommender) -> None:
        self.model = model

    def learn_one(self, *_args: Any, **_kwargs: Any) -> None:
        return None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)


class Replicated:
    """N replicas of a model, each learning its users at once and the rest every `every`."""

    def __init__(
        self,
        factory: Callable[[], Recommender],
        n: int,
        every: int,
        shared: Sequence[str] = (),
        own_late: bool = False,
    ) -> None:
        self.replicas = [factory() for _ in range(n)]
        self.shared: list[Recommender] = []
        if shared:
            first = self.replicas[0]
            assert isinstance(first, Hybrid)
            for name in shared:
                model = first.components[name]
                self.shared.append(model)
                for replica in self.replicas:
                    assert isinstance(replica, Hybrid)
                    replica.components[name] = _Shared(model)  # type: ignore[assignment]
        first = self.replicas[0]
        if isinstance(first, Hybrid):
            for replica in self.replicas[1:]:
                assert isinstance(replica, Hybrid)
                replica.paired = first.paired  # the self-test's sums, merged
        self.every, self.seen, self.own_late = every, 0, own_late
        self.pending: list[list[Pending]] = [[] for _ in range(n)]
        self.own: list[Pending] = []  # with own_late: the owners' interactions, in order

    def _owner(self, user: str) -> int:
        return zlib.crc32(user.encode()) % len(self.replicas)

    def recommend(
        self, user: str, history: Sequence[str], ts: float, k: int, exclude: Collection[str]
    ) -> list[Scored]:
        return self.replicas[self._owner(user)].recommend(user, history, ts, k, exclude)

    def learn_one(
        self, event: Interaction, history: Sequence[str], exclude: Collection[str] = ()
    ) -> None:
        owner = self._owner(event.user)
        if self.own_late:
            self.own.append((event, tuple(history), frozenset(exclude)))
        else:
            self.replicas[owner].learn_one(event, history, exclude)
        for model in self.shared:
            model.learn_one(event, history, exclude)
        for index, queue in enumerate(self.pending):
            if index != owner and not self.own_late:
                queue.append((event, tuple(history), frozenset(exclude)))
        self.seen += 1
        if self.seen % self.every == 0:
            self.merge()

    def merge(self) -> None:
        """Every replica learns the others' interactions since the last merge, in order."""
        if self.own_late:  # the block in its order: own users probed and learned, others learned
            for index, replica in enumerate(self.replicas):
                for event, history, exclude in self.own:
                    if self._owner(event.user) == index:
                        replica.learn_one(event, history, exclude)
                    else:
                        _learn_quietly(replica, event, history, exclude)
            self.own.clear()
            return
        for replica, queue in zip(self.replicas, self.pending, strict=True):
            parts = list(replica.components.values()) if isinstance(replica, Hybrid) else []
            for event, history, exclude in queue:
                if not parts:
                    replica.learn_one(event, history, exclude)
                for part in parts:  # no probe: it was probed in its user's replica
                    part.learn_one(event, history, exclude)
            queue.clear()


def _learn_quietly(
    replica: Recommender, event: Interaction, history: Sequence[str], exclude: Collection[str]
) -> None:
    """Learn without the hybrid's probe (it was probed in its user's replica)."""
    if isinstance(replica, Hybrid):
        for part in replica.components.values():
            part.learn_one(event, history, exclude)
    else:
        replica.learn_one(event, history, exclude)


def interactions() -> list[Interaction]:
    with (DATA / "ratings.csv").open() as handle:
        rows = sorted(
            (int(r["timestamp"]), r["userId"], r["movieId"]) for r in csv.DictReader(handle)
        )
    return [Interaction(user, item, float(ts)) for ts, user, item in rows]


def recall(model: Any, events: list[Interaction]) -> float:
    return replay(model, events, 10, 20).totals()["recall"]  # history_len default


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="hybrid")
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--every", default="1000,10000,50000")
    parser.add_argument("--shared", default="", help="hybrid components kept exact, e.g. cooc")
    parser.add_argument("--exact", action="store_true", help="also the single model")
    parser.add_argument("--own-late", action="store_true", help="own interactions wait too")
    args = parser.parse_args()
    events, settings = interactions(), settings_of(shipped())
    shared = [s for s in args.shared.split(",") if s]
    if args.exact:
        print(f"{args.model} exact: Recall@10 {recall(build(args.model, settings), events):.4f}")
    for every in map(int, args.every.split(",")):
        model = Replicated(
            lambda: build(args.model, settings), args.replicas, every, shared, args.own_late
        )
        label = f"shared={','.join(shared) or '-'}{', own late' if args.own_late else ''}"
        print(
            f"{args.model} x{args.replicas} merged every {every:,} ({label}): "
            f"Recall@10 {recall(model, events):.4f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
