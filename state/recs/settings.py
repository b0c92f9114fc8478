"""The recommenders by name, built from one settings object: the same models in replay and live.

`tailor evaluate` and the live models step both build their models here, so a variant named
"hybrid" in the worker is exactly the model a replay measured under that name.

>>> from tailor.flows.config import load_config
>>> settings = RecSettings.of(load_config(env={}).recs, seed=7)
>>> sorted(MODELS)
['category', 'cooc', 'hybrid', 'isgd', 'mostpop', 'trending']
>>> type(build("hybrid", settings)).__name__
'Hybrid'
>>> settings.weight_of("purchase"), settings.weight_of("page_view")
(3, 1)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from tailor.state.recs.base import Recommender
from tailor.state.recs.cooc_counts import CoOccurrence
from tailor.state.recs.cooccurrence import CoocRecommender
from tailor.state.recs.fism import FISM
from tailor.state.recs.fism_recommender import FISMRecommender
from tailor.state.recs.group_trending import CategoryPopular, SegmentTrending
from tailor.state.recs.hybrid import Hybrid
from tailor.state.recs.isgd import ISGDRecommender
from tailor.state.recs.trending import MostPopular, TrendingRecommender

__all__ = ["KINDS", "MODELS", "RecSettings", "build", "restore"]

#: The hybrid's self-test forgets half its evidence over this many interactions.
SELECT_HALFLIFE = 50_000.0
#: The models that answer without a user history: the hybrid's possible fallback chain.
FALLBACKS = ("mostpop", "segment", "trending")


@dataclass(frozen=True)
class RecSettings:
    """Every recommender setting: the `[recs]` section's (`tailor.flows.settings.RecsSettings`, each
    field under its own name) and `segments.seed`. No defaults here: the configuration's are
    the only ones (`RecSettings.of`)."""

    k: int  # list length (the self-test scores lists of this length)
    cooc_max_neighbors: int
    cooc_window: int
    cooc_alpha: float
    trending_halflife_s: float
    isgd_factors: int
    isgd_learning_rate: float
    isgd_regularization: float
    isgd_negatives: int
    isgd_init_std: float
    isgd_bias_learning_rate: float
    isgd_alpha: float
    isgd_history: int
    hybrid_depth: int
    hybrid_c: float
    hybrid_weights: Mapping[str, float]
    hybrid_fallback: tuple[str, ...]
    hybrid_select: bool
    hybrid_probe_every: int
    hybrid_warm_probes: int
    event_weights: Mapping[str, int]
    seed: int

    def __post_init__(self) -> None:
        bad = {t: w for t, w in self.event_weights.items() if not isinstance(w, int) or w < 1}
        if bad:
            raise ValueError(f"recs.event_weights must be whole numbers >= 1, got {bad}")
        if self.hybrid_probe_every < 1:
            raise ValueError(f"recs.hybrid_probe_every must be >= 1, got {self.hybrid_probe_every}")
        if self.hybrid_warm_probes < 0:
            raise ValueError(f"recs.hybrid_warm_probes must be >= 0, got {self.hybrid_warm_probes}")
        unknown = set(self.hybrid_fallback) - set(FALLBACKS)
        if unknown or not self.hybrid_fallback:
            raise ValueError(
                f"recs.hybrid_fallback must name some of {list(FALLBACKS)}, got "
                f"{list(self.hybrid_fallback)}"
            )
        if any(w < 0 for w in self.hybrid_weights.values()):
            raise ValueError(f"recs.hybrid_weights must be >= 0, got {dict(self.hybrid_weights)}")

    @classmethod
    def of(cls, recs: object, seed: int) -> RecSettings:
        """From the configuration's `[recs]` section (any object with these fields as
        attributes, `tailor.flows.settings.RecsSettings`) and `segments.seed`."""
        given = {f.name: getattr(recs, f.name) for f in fields(cls) if f.name != "seed"}
        return cls(**given, seed=seed)

    def weight_of(self, event_type: str | None) -> int:
        """How many interactions an event of this type counts as (1 unless configured)."""
        return int(self.event_weights.get(event_type or "", 1))


def _cooc(settings: RecSettings) -> CoOccurrence:
    return CoOccurrence(
        settings.cooc_max_neighbors, settings.cooc_window, alpha=settings.cooc_alpha
    )


def _isgd(settings: RecSettings) -> FISMRecommender:
    model = FISM(
        n_factors=settings.isgd_factors,
        learning_rate=settings.isgd_learning_rate,
        regularization=settings.isgd_regularization,
        negatives=settings.isgd_negatives,
        init_std=settings.isgd_init_std,
        bias_learning_rate=settings.isgd_bias_learning_rate,
        alpha=settings.isgd_alpha,
        history=settings.isgd_history,
        seed=settings.seed,
    )
    return FISMRecommender(model)


def _hybrid(settings: RecSettings) -> Hybrid:
    halflife = settings.trending_halflife_s
    components: dict[str, Recommender] = {
        "cooc": CoocRecommender(_cooc(settings)),
        "isgd": _isgd(settings),
        "category": CategoryPopular(halflife),
        "segment": SegmentTrending(halflife),
        "trending": TrendingRecommender(halflife),
        "mostpop": MostPopular(),
    }
    return Hybrid(
        components,
        settings.hybrid_weights,
        pool="cooc",
        depth=settings.hybrid_depth,
        c=settings.hybrid_c,
        fallback=tuple(settings.hybrid_fallback),
        select=settings.hybrid_select,
        probe_every=settings.hybrid_probe_every,
        warm_probes=settings.hybrid_warm_probes,
        k=settings.k,
        halflife=SELECT_HALFLIFE / settings.hybrid_probe_every,
    )


#: Model name → factory.
MODELS: dict[str, Callable[[RecSettings], Recommender]] = {
    "mostpop": lambda _settings: MostPopular(),
    "trending": lambda settings: TrendingRecommender(settings.trending_halflife_s),
    "cooc": lambda settings: CoocRecommender(_cooc(settings), MostPopular()),
    "isgd": _isgd,
    "category": lambda settings: CategoryPopular(settings.trending_halflife_s),
    "hybrid": _hybrid,
}


def build(name: str, settings: RecSettings) -> Recommender:
    """A fresh model by name; an unknown name raises `ValueError`."""
    factory = MODELS.get(name)
    if factory is None:
        raise ValueError(f"unknown recommender {name!r}; choose from {sorted(MODELS)}")
    return factory(settings)


#: Snapshot kind (the class name `to_snapshot` writes) → class: every model a store may hold.
KINDS: dict[str, type[Recommender]] = {
    cls.__name__: cls
    for cls in (
        MostPopular,
        TrendingRecommender,
        CoocRecommender,
        FISMRecommender,
        # the `isgd` recommender of stores written before FISM replaced it: resumed as it was
        ISGDRecommender,
        CategoryPopular,
        SegmentTrending,
        Hybrid,
    )
}


def restore(data: Mapping[str, Any]) -> Recommender:
    """A model from its `to_snapshot()` data, by the class name it carries (a hybrid's
    components and a co-occurrence model's fill first, handed to it as `parts`)."""
    kind = data["kind"]
    cls = KINDS.get(kind)
    if cls is None:
        raise ValueError(f"a snapshot of an unknown recommender {kind!r}")
    parts: dict[str, Recommender] = {}
    if cls is Hybrid:
        parts = {name: restore(part) for name, part in data["components"].items()}
    elif cls is CoocRecommender and data["fill"] is not None:
        parts = {"fill": restore(data["fill"])}
    return cls.from_snapshot(data, parts)
