"""The recommendation half of the global models as the live flow runs it.

Only what the global models compute lives here: the recommenders, the variant split, the
business rules (blocked items, the diversity cap). What belongs to one user (the list last
sent to them, the test of it against their next interaction, prequential evaluation after
Vinagre, Jorge & Gama 2014) lives with the user's key in `tailor.operators.user_outputs`, and the
quality windows in `tailor.state.recs.live_quality`: per-user state here is only what a model itself
keeps (ISGD's user vectors, per-segment trending's segment of a user).

Users are split into variants by stable hash bucketing (`tailor.state.recs.variants`); each variant
names the recommender its users get, by the names of `tailor.state.recs.settings` (the same models a
replay measures). Every model named by some variant learns every interaction, so a team runs an A/B
test by giving two variants shares and reading the quality per variant.

>>> from dataclasses import replace
>>> from tailor.flows.config import load_config
>>> shipped = RecSettings.of(load_config(env={}).recs, seed=42)
>>> recs = LiveRecs.build(k=2, settings=replace(shipped, hybrid_select=False))
>>> for user, item, before in [("u1", "a", ()), ("u1", "b", ("a",)), ("u2", "a", ())]:
...     recs.learn(Interaction(user, item, 0.0), before)
>>> variant, items = recs.recommend("u2", ("a",), frozenset(), 0.0)
>>> variant, [(r.item_id, r.reason) for r in items]
('all', [('b', 'viewed with a')])
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from tailor.state.crossing import crossing
from tailor.state.recs.base import Interaction, Recommender, learn_batch
from tailor.state.recs.fallbacks import FallbackChanges, FallbackSources, ListId
from tailor.state.recs.group_trending import SegmentTrending
from tailor.state.recs.hybrid import Explained, Hybrid
from tailor.state.recs.live_quality import (
    QualityReport as QualityReport,  # where pickles before 22 find it
)
from tailor.state.recs.settings import MODELS, RecSettings, build, restore
from tailor.state.recs.variants import Variants

__all__ = ["FallbackRanking", "LiveRecs", "Recommendation"]

#: Times a capped list asks its model for three times more candidates, at most.
MAX_FILL_ROUNDS = 3
#: Scores are rounded so Redis holds short, stable JSON numbers.
SCORE_DIGITS = 6


@crossing
@dataclass(frozen=True, slots=True)
class Recommendation:
    """One recommended item, its score, the model that proposed it and why, for the user."""

    item_id: str
    score: float
    source: str
    reason: str = ""


#: A published list: which, its version, event time and (item, score) best first.
FallbackRanking = tuple[ListId, int, float, tuple[tuple[str, float], ...]]


@dataclass
class LiveRecs:
    """The variants' recommenders and business rules (snapshotted whole), and where the
    lists published for users without history last changed (`tailor.state.recs.fallbacks`)."""

    models: dict[str, Recommender]  # model name → the one instance every variant naming it uses
    variants: Variants
    assigned: dict[str, str]  # variant → model name
    k: int = 10
    exclude_seen: bool = True
    max_per_category: int = 0  # diversity cap: at most this many items of one category; 0 off
    #: Each item's first category, as events give it (for the diversity cap).
    categories: dict[str, str] = field(default_factory=dict)
    #: Items never to recommend (`tailor block`).
    blocked: set[str] = field(default_factory=set)
    fallbacks: FallbackChanges = field(default_factory=FallbackChanges)

    @classmethod
    def build(
        cls,
        settings: RecSettings,
        k: int = 10,
        shares: Mapping[str, float] | None = None,
        models: Mapping[str, str] | None = None,
        salt: str = "tailor",
        exclude_seen: bool = True,
        max_per_category: int = 0,
    ) -> LiveRecs:
        """Check the variants' settings once, at start-up; bad ones raise `ValueError`."""
        shares = dict(shares or {"all": 1.0})
        assigned = dict(models or dict.fromkeys(shares, "hybrid"))
        if set(assigned) != set(shares):
            raise ValueError(f"variants {sorted(shares)} need a model each, got {sorted(assigned)}")
        unknown = sorted(set(assigned.values()) - set(MODELS))
        if unknown:
            raise ValueError(f"unknown recommenders {unknown}; choose from {sorted(MODELS)}")
        return cls(
            models={name: build(name, settings) for name in sorted(set(assigned.values()))},
            variants=Variants(shares, salt),
            assigned=assigned,
            k=k,
            exclude_seen=exclude_seen,
            max_per_category=max_per_category,
        )

    def learn(
        self,
        event: Interaction,
        previous: Sequence[str],
        purchased: Collection[str] = (),
        probe: bool = True,
    ) -> None:
        """Every model learns the interaction (the test of the user's last list comes first,
        in `tailor.operators.user_outputs`); a hybrid probes its self-test on it only if `probe`."""
        if event.categories and self.max_per_category:
            self.categories.setdefault(event.item, event.categories[0])
        exclude = self._exclusions(previous, purchased)
        for model in self.models.values():
            if isinstance(model, Hybrid):
                model.learn_one(event, previous, exclude, probe=probe)
            else:
                model.learn_one(event, previous, exclude)
        self.fallbacks.learned(event, self._sources)

    def learn_many(self, events: Sequence[Interaction], previous: Sequence[Sequence[str]]) -> None:
        """Another worker's interactions, learned as one batch per model (`learn_batch`): no
        probes (their own replica probes them), and only the history is excluded as negatives
        (a replica's copy of another worker's updates carries no purchases)."""
        if self.max_per_category:
            for event in events:
                if event.categories:
                    self.categories.setdefault(event.item, event.categories[0])
        excludes = [self._exclusions(history, ()) for history in previous]
        for model in self.models.values():
            learn_batch(model, events, previous, excludes)
        sources = self._sources
        for event in events:
            self.fallbacks.learned(event, sources)

    def assign_segment(self, user: str, segment: str) -> None:
        """The user's segment, for the models that keep trending per segment."""
        for model in self._segment_models():
            model.assign(user, segment)

    def recommend(
        self, user: str, history: Sequence[str], purchased: Collection[str], ts: float
    ) -> tuple[str, tuple[Recommendation, ...]]:
        """The user's variant and top-k, minus purchased (and seen) and blocked items, at most
        `max_per_category` per category."""
        variant = self.variants.assign(user)
        name = self.assigned[variant]
        model = self.models[name]
        exclude = self._exclusions(history, purchased)
        wanted = self.k * 3 if self.max_per_category else self.k
        for _round in range(MAX_FILL_ROUNDS):
            proposed = _explained(model, name, user, history, ts, wanted, exclude)
            picked = self._capped(proposed)
            if len(picked) >= self.k or len(proposed) < wanted:
                break  # enough, or the model has nothing more
            wanted *= 3
        reasons = model.why(user, history, [r.item for r in picked])
        recs = tuple(
            Recommendation(r.item, round(r.score, SCORE_DIGITS), r.source, reason)
            for r, reason in zip(picked, reasons, strict=True)
        )
        return variant, recs

    def _exclusions(self, history: Sequence[str], purchased: Collection[str]) -> set[str]:
        """What the user is never recommended: purchased, blocked, and seen items."""
        exclude = set(purchased) | self.blocked
        if self.exclude_seen:
            exclude.update(history)
        return exclude

    def block(self, item: str, blocked: bool = True) -> None:
        """Stop (or resume) recommending `item`; it is still learned from."""
        if (item in self.blocked) == blocked:
            return
        if blocked:
            self.blocked.add(item)
        else:
            self.blocked.discard(item)
        self.fallbacks.blocked()

    @cached_property
    def _sources(self) -> FallbackSources:
        """The models the published lists come from (the models never change after build)."""
        return FallbackSources.of(self.models[name] for name in sorted(self.models))

    def fallback_lists(self, length: int) -> list[FallbackRanking]:
        """The published lists changed since last asked, each its best `length` items but
        the blocked ones; scores rounded as recommendations' are."""
        sources = self._sources
        out: list[FallbackRanking] = []
        for list_id, version in self.fallbacks.take(sources.lists()):
            ranked = sources.ranked(list_id, length, self.blocked)
            if ranked is not None:
                at, top = ranked
                items = tuple((item, round(score, SCORE_DIGITS)) for item, score in top)
                out.append((list_id, version, at, items))
        return out

    def _capped(self, candidates: Sequence[Explained]) -> list[Explained]:
        """Candidates in order, up to k, at most `max_per_category` per category (items of
        unknown category are never capped)."""
        cap = self.max_per_category
        if not cap:
            return list(candidates[: self.k])
        per: dict[str, int] = {}
        out: list[Explained] = []
        for rec in candidates:
            if len(out) == self.k:
                break
            category = self.categories.get(rec.item)
            if category is not None:
                if per.get(category, 0) >= cap:
                    continue
                per[category] = per.get(category, 0) + 1
            out.append(rec)
        return out

    def _segment_models(self) -> list[SegmentTrending]:
        found = []
        for model in self.models.values():
            parts = model.components.values() if isinstance(model, Hybrid) else [model]
            found += [part for part in parts if isinstance(part, SegmentTrending)]
        return found

    def forget(self, user: str, history: Sequence[str]) -> None:
        """Erasure: every model forgets the user."""
        for model in self.models.values():
            model.forget(user, history)

    def to_snapshot(self) -> dict[str, Any]:
        """Every model, the split and the business rules, as plain data."""
        return {
            "models": {name: model.to_snapshot() for name, model in self.models.items()},
            "variants": self.variants.to_snapshot(),
            "assigned": dict(self.assigned),
            "k": self.k,
            "exclude_seen": self.exclude_seen,
            "max_per_category": self.max_per_category,
            "categories": dict(self.categories),
            "blocked": sorted(self.blocked),
            "fallbacks": self.fallbacks.to_snapshot(),
        }

    @classmethod
    def from_snapshot(cls, data: Mapping[str, Any]) -> LiveRecs:
        return cls(
            models={name: restore(model) for name, model in data["models"].items()},
            variants=Variants.from_snapshot(data["variants"]),
            assigned=dict(data["assigned"]),
            k=data["k"],
            exclude_seen=data["exclude_seen"],
            max_per_category=data["max_per_category"],
            categories=dict(data["categories"]),
            blocked=set(data["blocked"]),
            fallbacks=FallbackChanges.from_snapshot(data.get("fallbacks")),
        )


def _explained(
    model: Recommender,
    name: str,
    user: str,
    history: Sequence[str],
    ts: float,
    k: int,
    exclude: Collection[str],
) -> list[Explained]:
    """The model's top `k` with the component behind each (the model itself if it has none)."""
    if isinstance(model, Hybrid):
        return model.recommend_explained(user, history, ts, k, exclude)
    return [
        Explained(item, score, name)
        for item, score in model.recommend(user, history, ts, k, exclude)
    ]
