"""A hybrid recommender: one model proposes, several re-rank, the best list is served.

Raw scores of different models do not share a scale (a co-occurrence probability, a dot
product of latent factors, a decayed count), so they are not blended. The strongest model
proposes a pool of candidates (co-occurrence's top `depth`) and every weighted component
*ranks that pool* by its own score; an item earns ``weight / (c + rank)`` from each ranking
(reciprocal rank fusion, Cormack, Clarke & Büttcher, SIGIR 2009, with per-model weights). The
other models cannot push in items the proposer never saw, so they refine its order instead of
diluting it.

No fixed blend is best on every dataset, so with ``select=True`` the hybrid tests itself as it
learns: at the first `warm_probes` interactions (that are not repeats) and then at every
`probe_every`-th, before learning it, it computes every list it could serve for that user (the
fused one and each component's own top `k`, filled from the fallback chain and excluding what
serving would) and records the item's NDCG@k gain in each, pair by pair, with exponentially
decayed weight (`halflife` probes). It serves the first list in order of preference that no
other list beat significantly (`leader`): a young stream gets popularity, which needs no
evidence, and a personal list once it has proved better. Probes are counted in learning order,
so what is served never depends on how the stream was cut into batches; serving computes only
the leader's list.

Cold start: a user with no history gets the first non-empty list of `fallback` (all-time
popularity, trending in the user's segment, trending overall), and a short list is filled from
it in the configured order. Each recommendation carries the component that contributed most
to it. Why this design: docs/decisions/0015-hybrid-self-test.md.

>>> from tailor.state.recs.base import Interaction
>>> from tailor.state.recs.trending import MostPopular
>>> hybrid = Hybrid({"pop": MostPopular()}, {"pop": 1.0}, pool="pop")
>>> hybrid.learn_one(Interaction("u1", "a", 0.0), ())
>>> [(r.item, r.source) for r in hybrid.recommend_explained("u2", ("a",), 0.0, 1, set())]
[('a', 'pop')]
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Self

from tailor.state import increments
from tailor.state.recs.base import Interaction, Ranker, Recommender, Scored, learn_batch
from tailor.state.recs.list_gain import filled_gain, gain_at, paired_t

__all__ = ["FUSED", "Explained", "Hybrid"]

#: The name of the fused list among the lists `select` chooses from.
FUSED = "hybrid"


def _source(opinions: list[tuple[str, list[float], list[float]]], index: int, pool: str) -> str:
    """The component whose ranking gave item `index` the most (the first on a tie), among
    those with an opinion of it (a score above 0): a reason needs an opinion."""
    best, source = 0.0, pool
    for name, scores, gains in opinions:
        if gains[index] > best and scores[index] > 0:
            best, source = gains[index], name
    return source


@dataclass(frozen=True, slots=True)
class Explained:
    """One recommendation with its score and the component that proposed it most."""

    item: str
    score: float
    source: str


class Hybrid(Recommender):
    """A pool from `pool`, re-ranked by weighted reciprocal rank fusion over `weights`.

    Parameters
    ----------
    components
        Name → model; every one learns every interaction.
    weights
        Name → weight of that component's ranking of the pool (0 or absent: it only learns,
        e.g. a fallback).
    pool
        The component whose top `depth` items are the candidates.
    depth
        How many candidates the pool holds.
    c
        The fusion constant: larger flattens the gap between the first ranks.
    fallback
        Component names tried in order for a user with no history, and to fill a short list.
    select
        Test the lists on probes and serve the first that no other beat (`leader`).
    halflife
        Probes after which a hit counts half, for `select`.
    probe_every
        One interaction in this many is a probe, for `select`...
    warm_probes
        ... after the first this many, which all are (a young stream needs evidence fast).
    z
        The paired t statistic a list's lead over another must exceed to count as beating it.
    k
        Length of the lists a probe scores.
    """

    def __init__(
        self,
        components: Mapping[str, Recommender],
        weights: Mapping[str, float],
        pool: str = "cooc",
        depth: int = 50,
        c: float = 20.0,
        fallback: Sequence[str] = (),
        select: bool = False,
        halflife: float = 2500.0,
        probe_every: int = 20,
        warm_probes: int = 5000,
        z: float = 2.0,
        k: int = 10,
    ) -> None:
        unknown = (set(weights) | set(fallback) | {pool}) - set(components)
        if unknown:
            raise ValueError(f"weights/pool/fallback name unknown components: {sorted(unknown)}")
        if depth < 1 or c < 0 or halflife <= 0 or probe_every < 1 or k < 1:
            raise ValueError("depth, probe_every and k must be >= 1, c >= 0, halflife > 0")
        self.components = dict(components)
        #: Asked by probes for a rank, not a list (a fallback's list fills others; checked once)
        rankers = ((n, m) for n, m in components.items() if n not in fallback)
        self._rankers = {name: model for name, model in rankers if isinstance(model, Ranker)}
        self.weights = {name: w for name, w in weights.items() if w > 0}
        self.pool = pool
        self.depth = depth
        self.c = c
        self.fallback = tuple(fallback)
        self.select = select
        self.decay = 0.5 ** (1.0 / halflife)
        self.probe_every = probe_every
        self.warm_probes = warm_probes
        self.z = z
        self.k = k
        #: For each pair (a, b) of lists, a before b in `lists`: decayed (probes, Σ d, Σ d²)
        #: of d = NDCG@k gain of the item in a's list − in b's, both as served (filled).
        self.paired: dict[tuple[str, str], tuple[float, float, float]] = {}
        self.lists = (FUSED, *self.components)
        self.testable = 0
        self.probes = 0
        #: The list served, changed only at probes (`leader`): what is served never depends
        #: on when serving asks.
        self.leading = (*self.fallback, FUSED)[0]
        #: A personal list has led: popularity was beaten once, and is no longer the default.
        self.personal = False
        self._sources: dict[str, str] = {}  # item → source, of the last list returned
        self._gain_tables: dict[tuple[float, int], list[float]] = {}

    def learn_one(
        self,
        event: Interaction,
        history: Sequence[str],
        exclude: Collection[str] = (),
        probe: bool = True,
    ) -> None:
        """Every component learns; a testable interaction is first a probe of the self-test,
        unless `probe` is False (a model replica learning another worker's users)."""
        if probe and self.select and history and event.item not in history:  # a repeat: no test
            self.testable += 1
            if self.testable <= self.warm_probes or self.testable % self.probe_every == 0:
                self._probe(event, history, exclude)
        for model in self.components.values():
            model.learn_one(event, history, exclude)

    def learn_many(
        self,
        events: Sequence[Interaction],
        histories: Sequence[Sequence[str]],
        excludes: Sequence[Collection[str]],
    ) -> None:
        """Another worker's interactions (a replica's remote batch): components learn them as
        a batch (`tailor.state.recs.base.learn_batch`); their own replica probes them."""
        for model in self.components.values():
            learn_batch(model, events, histories, excludes)

    def _probe(self, event: Interaction, history: Sequence[str], exclude: Collection[str]) -> None:
        """Test then train: the NDCG@k gain of the item in every list as it would be served
        (the fused list and each component's own, filled from the fallback chain), excluding
        what serving excludes (at least the recent history)."""
        self.probes += 1
        user, ts, k = event.user, event.ts, self.k
        exclude = set(exclude).union(history)
        proposed = self._proposed(user, history, ts, exclude)
        if any(item == event.item for item, _ in proposed):
            lists = {FUSED: [r.item for r in self._fused(user, history, k, proposed)]}
        else:  # the fused list is k of the pool's items (all when fewer): without the item
            # in the pool, any k of them give the same gain, 0 (or the same fill when short)
            lists = {FUSED: [item for item, _ in proposed[:k]]}
        ranked: dict[str, float] = {}  # gains known from a rank alone: no list built
        for name, model in self.components.items():
            if name == self.pool:
                lists[name] = [item for item, _ in proposed[:k]]
                continue
            ranker = self._rankers.get(name)
            rank = ranker.rank(user, history, ts, k, exclude, event.item) if ranker else None
            if rank is None:  # else a full list: fills cannot reach it, its rank decides
                lists[name] = [item for item, _ in model.recommend(user, history, ts, k, exclude)]
            else:
                ranked[name] = gain_at(rank)
        fills = [lists[name] for name in self.fallback]
        gains = {name: filled_gain(items, fills, event.item, k) for name, items in lists.items()}
        gains.update(ranked)
        decay, paired, zero = self.decay, self.paired, (0.0, 0.0, 0.0)
        for i, a in enumerate(self.lists):
            gain_a = gains[a]
            for b in self.lists[i + 1 :]:
                d = gain_a - gains[b]
                n, total, squares = paired.get((a, b), zero)
                paired[(a, b)] = (decay * n + 1.0, decay * total + d, decay * squares + d * d)
        self._lead()

    def _lead(self) -> None:
        """Serve `leader` from now on; a personal list leading makes the chain a last resort."""
        self.leading = self.leader()
        self.personal = self.personal or self.leading not in self.fallback

    def recommend(
        self, user: str, history: Sequence[str], ts: float, k: int, exclude: Collection[str]
    ) -> list[Scored]:
        return [(r.item, r.score) for r in self.recommend_explained(user, history, ts, k, exclude)]

    def recommend_explained(
        self, user: str, history: Sequence[str], ts: float, k: int, exclude: Collection[str]
    ) -> list[Explained]:
        """The served top `k`, each with the component that contributed most to it."""
        leader = self.leading if self.select else FUSED
        served: list[Explained] = []
        if leader != FUSED:  # its own list, filled from the chain: what the probes scored
            own = self.components[leader].recommend(user, history, ts, k, exclude)
            served = [Explained(item, score, leader) for item, score in own]
        if not served and leader not in self.fallback:
            served = self._fused(user, history, k, self._proposed(user, history, ts, exclude))
        if len(served) < k:
            served += self._fill(user, history, ts, k - len(served), exclude, served)
        self._sources = {r.item: r.source for r in served}
        return served

    def _proposed(
        self, user: str, history: Sequence[str], ts: float, exclude: Collection[str]
    ) -> list[Scored]:
        """The pool: the proposer's top `depth` (nothing without history)."""
        if not history:
            return []
        return self.components[self.pool].recommend(user, history, ts, self.depth, exclude)

    def _fused(
        self, user: str, history: Sequence[str], k: int, proposed: list[Scored]
    ) -> list[Explained]:
        if not proposed:
            return []
        items = [item for item, _ in proposed]
        totals = [0.0] * len(items)
        opinions: list[tuple[str, list[float], list[float]]] = []  # (name, scores, gains)
        for name, weight in self.weights.items():
            if name == self.pool:
                scores = [score for _, score in proposed]
            else:
                scores = self.components[name].score(user, history, items)
                if max(scores) == min(scores):
                    continue  # no opinion (an unknown user, items without categories)
            order = sorted(
                range(len(items)), key=scores.__getitem__, reverse=True
            )  # stable: ties by pool rank
            gains = [0.0] * len(items)
            for index, gain in zip(order, self._rank_gains(weight, len(items)), strict=True):
                gains[index] = gain
                totals[index] += gain
            opinions.append((name, scores, gains))
        ranked = sorted(range(len(items)), key=totals.__getitem__, reverse=True)[:k]
        return [Explained(items[i], totals[i], _source(opinions, i, self.pool)) for i in ranked]

    def _rank_gains(self, weight: float, n: int) -> list[float]:
        """``weight / (c + rank)`` for ranks 1..n, worked out once per (weight, n)."""
        key = (weight, n)
        gains = self._gain_tables.get(key)
        if gains is None:
            gains = self._gain_tables[key] = [weight / (self.c + r) for r in range(1, n + 1)]
        return gains

    def _fill(
        self,
        user: str,
        history: Sequence[str],
        ts: float,
        k: int,
        exclude: Collection[str],
        taken: Sequence[Explained],
    ) -> list[Explained]:
        """Up to `k` more from the fallback chain (none of `taken`), in its order."""
        out: list[Explained] = []
        skip = set(exclude) | {r.item for r in taken}
        for name in self.fallback:
            if len(out) == k:
                break
            for item, score in self.components[name].recommend(
                user, history, ts, k - len(out), skip
            ):
                out.append(Explained(item, score, name))
                skip.add(item)
        return out

    def leader(self) -> str:
        """The list `select` serves now: the first in `preference` that no other list beat
        significantly on the probes (a cycle of noise, where each is beaten: the fused list).

        Popularity comes first because it needs no evidence; the fused list takes over once
        it beats popularity, a component's own list only when it beats the fused one. Once a
        personal list has led, the chain moves to the end of `preference`, so noise cannot
        hand popularity back. Comparisons are paired t-tests on the item's NDCG@k gain in the
        two lists (`t_stat`), which see every move inside the top k. Why:
        docs/decisions/0015-hybrid-self-test.md.
        """
        for name in self.preference():
            if not self.beaten(name):
                return name
        return FUSED

    def beaten(self, name: str) -> bool:
        """Whether another list's lead over `name` is significant."""
        return any(self.t_stat(other, name) > self.z for other in self.lists)

    def preference(self) -> list[str]:
        """The fallback chain, then the fused list, then the pool's own order and the other
        components; the chain last once a personal list has led."""
        chain = self.fallback
        rest = [name for name in self.components if name not in chain and name != self.pool]
        if self.personal:
            return [FUSED, self.pool, *rest, *chain]
        return [*chain, FUSED, self.pool, *rest]

    def t_stat(self, a: str, b: str) -> float:
        """The paired t statistic of list a's gain over list b's (0 before `MIN_PROBES`)."""
        if a == b:
            return 0.0
        sign = 1.0
        if self.lists.index(a) > self.lists.index(b):
            a, b, sign = b, a, -1.0
        return sign * paired_t(self.paired.get((a, b), (0.0, 0.0, 0.0)))

    def score(self, user: str, history: Sequence[str], items: Sequence[str]) -> list[float]:
        """The pool component's opinion (the fused score only exists for its own pool)."""
        return self.components[self.pool].score(user, history, items)

    def why(self, user: str, history: Sequence[str], items: Sequence[str]) -> list[str]:
        """Each item's reason from the component that contributed most to it in the last list
        (each component asked once, for its items)."""
        by_source: dict[str, list[int]] = {}
        for index, item in enumerate(items):
            by_source.setdefault(self._sources.get(item, self.pool), []).append(index)
        out = [""] * len(items)
        for source, indexes in by_source.items():
            reasons = self.components[source].why(user, history, [items[i] for i in indexes])
            for index, reason in zip(indexes, reasons, strict=True):
                out[index] = reason
        return out

    def forget(self, user: str, history: Sequence[str]) -> None:
        for model in self.components.values():
            model.forget(user, history)

    def to_snapshot(self) -> dict[str, Any]:
        """Settings, each component's snapshot, the self-test's sums and leader (the last
        list's sources and the rank-gain tables are caches, rebuilt on demand)."""
        settings = ("weights", "pool", "depth", "c", "fallback", "select", "decay")
        learned = ("probe_every", "warm_probes", "z", "k", "testable", "probes", "leading")
        return {
            "kind": type(self).__name__,
            **{name: getattr(self, name) for name in (*settings, *learned)},
            "personal": self.personal,
            "components": {name: _part(model) for name, model in self.components.items()},
            "paired": [(a, b, *sums) for (a, b), sums in self.paired.items()],
        }

    @classmethod
    def from_snapshot(
        cls, data: Mapping[str, Any], parts: Mapping[str, Recommender] | None = None
    ) -> Self:
        """`parts`: the components, rebuilt by the caller from `data["components"]`."""
        if parts is None:
            raise ValueError("a hybrid's snapshot needs its components rebuilt (`parts`)")
        components = parts
        given = ("pool", "depth", "c", "fallback", "select", "probe_every", "warm_probes", "z", "k")
        made = cls(components, data["weights"], **{name: data[name] for name in given})
        made.decay = data["decay"]
        made.testable, made.probes = data["testable"], data["probes"]
        made.leading, made.personal = data["leading"], data["personal"]
        made.paired = {(a, b): (n, total, squares) for a, b, n, total, squares in data["paired"]}
        return made


def _part(model: Recommender) -> dict[str, Any]:
    """`increments.part(model)` with the model's kind, which `tailor.state.recs.settings.restore`
    dispatches on (a reference to an incremental model's base has none of its own)."""
    return {"kind": type(model).__name__, **increments.part(model)}
