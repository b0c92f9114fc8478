"""The recommendation half of the global models as the live flow runs it, measured as it runs.

Every interaction is first a test, then a lesson (prequential evaluation, Vinagre, Jorge &
Gama 2014): before the models learn that a user touched an item, the list last sent to that
user is checked for it, and Recall@k, NDCG@k and MRR over a sliding window are kept per
variant. So quality is the quality users actually got, live, not a replay's estimate.

Users are split into variants by stable hash bucketing (`state.variants`); each variant names
the recommender its users get (``"hybrid"``: co-occurrence from the user's recent items, filled
from trending; ``"trending"``: decayed popularity for everyone). A team runs an A/B test by
giving two variants shares and reading the quality per variant.

>>> recs = LiveRecs.build(k=2, shares={"all": 1.0}, models={"all": "hybrid"})
>>> for user, item in [("u1", "a"), ("u1", "b"), ("u2", "a")]:
...     recs.learn(user, item, 0.0, ())
>>> variant, items = recs.recommend("u2", ("a",), frozenset())
>>> variant, [r.item_id for r in items]
('all', ['b'])
>>> recs.learn("u2", "b", 1.0, ("a",))  # u2 took the recommended item: a hit at rank 1
>>> recs.quality["all"].window_means()["recall"]
1.0
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypedDict

from state.cooccurrence import CoOccurrence
from state.prequential import Means, Prequential
from state.trending import Trending
from state.variants import Variants

__all__ = ["MODELS", "LiveRecs", "QualityReport", "Recommendation"]

#: The recommenders a variant may name.
MODELS = ("hybrid", "trending")
#: Trending lists asked for while filling past capped categories, at most.
MAX_FILL_ROUNDS = 10
#: What a trending recommendation says to the user.
TRENDING_REASON = "trending now"
#: Scores are rounded so Redis holds short, stable JSON numbers.
SCORE_DIGITS = 6


@dataclass(frozen=True, slots=True)
class Recommendation:
    """One recommended item, its score, the model that proposed it and why, for the user."""

    item_id: str
    score: float
    source: str
    reason: str = ""


class VariantQuality(TypedDict):
    """One variant's live quality over the window."""

    model: str
    recall: float
    ndcg: float
    mrr: float
    n: int


@dataclass(frozen=True, slots=True)
class QualityReport:
    """Live quality per variant, for Redis; `version` (events scored) orders reports."""

    version: int
    record: dict[str, VariantQuality]


@dataclass
class LiveRecs:
    """Co-occurrence and trending, variants, and live quality per variant (snapshotted whole)."""

    cooc: CoOccurrence
    trending: Trending
    variants: Variants
    models: dict[str, str]  # variant → recommender name (`MODELS`)
    k: int = 10
    exclude_seen: bool = True
    quality_window: int = 10_000
    max_tracked: int = 100_000  # users whose last list is kept for the test
    max_per_category: int = 0  # diversity cap: at most this many items of one category; 0 off
    quality: dict[str, Prequential] = field(default_factory=dict)
    shown: OrderedDict[str, tuple[str, ...]] = field(default_factory=OrderedDict)
    #: Each item's first category, as events give it (for the diversity cap).
    categories: dict[str, str] = field(default_factory=dict)
    #: Items never to recommend (`tailor block`).
    blocked: set[str] = field(default_factory=set)

    @classmethod
    def build(
        cls,
        k: int = 10,
        shares: Mapping[str, float] | None = None,
        models: Mapping[str, str] | None = None,
        cooc: CoOccurrence | None = None,
        trending: Trending | None = None,
        salt: str = "tailor",
        exclude_seen: bool = True,
        quality_window: int = 10_000,
        max_tracked: int = 100_000,
        max_per_category: int = 0,
    ) -> LiveRecs:
        """Check the variants' settings once, at start-up; bad ones raise `ValueError`."""
        shares = dict(shares or {"all": 1.0})
        models = dict(models or dict.fromkeys(shares, "hybrid"))
        if set(models) != set(shares):
            raise ValueError(f"variants {sorted(shares)} need a model each, got {sorted(models)}")
        unknown = sorted(set(models.values()) - set(MODELS))
        if unknown:
            raise ValueError(f"unknown recommenders {unknown}; choose from {list(MODELS)}")
        return cls(
            cooc=cooc if cooc is not None else CoOccurrence(alpha=0.0),
            trending=trending if trending is not None else Trending(cache_size=max(200, 4 * k)),
            variants=Variants(shares, salt),
            models=models,
            k=k,
            exclude_seen=exclude_seen,
            quality_window=quality_window,
            max_tracked=max_tracked,
            max_per_category=max_per_category,
            quality={name: Prequential(quality_window, k) for name in sorted(shares)},
        )

    def learn(
        self, user: str, item: str, ts: float, previous: Sequence[str], category: str | None = None
    ) -> None:
        """Test the user's last list with this interaction, then learn it."""
        if category is not None and self.max_per_category:
            self.categories.setdefault(item, category)
        shown = self.shown.get(user)
        if shown is not None and item not in previous:  # a repeat could not be recommended
            self.quality[self.variants.assign(user)].update(item, shown)
        self.cooc.learn_one(previous, item)
        self.trending.learn_one(item, ts)

    def recommend(
        self, user: str, history: Sequence[str], purchased: Collection[str]
    ) -> tuple[str, tuple[Recommendation, ...]]:
        """The user's variant and top-k, minus purchased (and seen) items; remembered for the
        next test."""
        variant = self.variants.assign(user)
        exclude = set(purchased) | self.blocked
        if self.exclude_seen:
            exclude.update(history)
        # with a diversity cap, ask for more candidates than k: some will be capped out
        wanted = self.k * 3 if self.max_per_category else self.k
        recs: list[Recommendation] = []
        if self.models[variant] == "hybrid":
            recs = self._capped(
                Recommendation(item, round(score, SCORE_DIGITS), "cooc", self._why(history, item))
                for item, score in self.cooc.recommend(history, wanted, exclude)
            )
            exclude.update(r.item_id for r in recs)
        for _round in range(MAX_FILL_ROUNDS):  # each round skips what the cap refused
            if len(recs) >= self.k:
                break
            more = self.trending.top(wanted, exclude)
            recs += self._capped(
                (
                    Recommendation(i, round(v, SCORE_DIGITS), "trending", TRENDING_REASON)
                    for i, v in more
                ),
                recs,
            )
            exclude.update(i for i, _ in more)
            if len(more) < wanted:
                break  # the catalogue is exhausted
        self._remember(user, tuple(r.item_id for r in recs))
        return variant, tuple(recs)

    def block(self, item: str, blocked: bool = True) -> None:
        """Stop (or resume) recommending `item`; it is still learned from."""
        if blocked:
            self.blocked.add(item)
        else:
            self.blocked.discard(item)

    def _capped(
        self, candidates: Iterable[Recommendation], taken: Sequence[Recommendation] = ()
    ) -> list[Recommendation]:
        """Candidates in order, up to k overall, at most `max_per_category` per category.

        Items of unknown category are never capped.
        """
        room, cap = self.k - len(taken), self.max_per_category
        per: dict[str, int] = {}
        if cap:
            for rec in taken:
                category = self.categories.get(rec.item_id)
                if category is not None:
                    per[category] = per.get(category, 0) + 1
        out: list[Recommendation] = []
        for rec in candidates:
            if len(out) == room:
                break
            category = self.categories.get(rec.item_id) if cap else None
            if category is not None:
                if per.get(category, 0) >= cap:
                    continue
                per[category] = per.get(category, 0) + 1
            out.append(rec)
        return out

    def _why(self, history: Sequence[str], item: str) -> str:
        viewed = self.cooc.explain(history, item)
        return f"viewed with {viewed}" if viewed is not None else ""

    def forget(self, user: str, history: Sequence[str]) -> None:
        """Erasure: the user's co-occurrence contributions and last list go."""
        self.cooc.unlearn_history(history)
        self.shown.pop(user, None)

    def report(self) -> QualityReport:
        """Quality per variant over the window: what the metrics and Redis show."""
        out: dict[str, VariantQuality] = {}
        scored = 0
        for variant, quality in sorted(self.quality.items()):
            means: Means = quality.window_means()
            out[variant] = VariantQuality(
                model=self.models[variant],
                recall=means["recall"],
                ndcg=means["ndcg"],
                mrr=means["mrr"],
                n=int(means["n"]),
            )
            scored += int(quality.totals()["n"])
        return QualityReport(scored, out)

    def _remember(self, user: str, items: tuple[str, ...]) -> None:
        """Keep the list for the user's next interaction; the least recently served user goes
        first when `max_tracked` is reached (their next interaction is then not scored)."""
        shown = self.shown
        shown[user] = items
        shown.move_to_end(user)
        if len(shown) > self.max_tracked:
            shown.popitem(last=False)
