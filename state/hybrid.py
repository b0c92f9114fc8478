"""A hybrid recommender: weighted rank fusion of component models, with a cold-start fallback.

Blending raw scores across models fails because their scales have nothing in common (a
co-occurrence probability, a dot product of latent factors, a decayed count); z-scoring them,
measured here, diluted co-occurrence instead of adding to it. Rank fusion needs no common scale:
each component proposes its best `depth` items and an item earns ``weight / (c + rank)`` from
each list it appears in (reciprocal rank fusion, Cormack, Clarke & Büttcher, SIGIR 2009, with
per-model weights). Items several models agree on rise; a strong component keeps its order
where the others are silent.

A user with no history has nothing for history-based models to work from: the first
component of `fallback` that returns anything answers alone (e.g. trending in the user's
segment, then trending overall).

Each recommendation says why, from the component that contributed most to it.

>>> from state.recommender import MostPopular
>>> hybrid = Hybrid({"pop": MostPopular()}, {"pop": 1.0})
>>> hybrid.learn_one("u1", "a", 0.0, ())
>>> [r.item for r in hybrid.recommend_explained("u2", ("a",), 0.0, 1, set())]
['a']
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from state.recommender import Recommender, Scored

__all__ = ["Explained", "Hybrid"]


@dataclass(frozen=True, slots=True)
class Explained:
    """One recommendation with its fused score and the component that proposed it most."""

    item: str
    score: float
    source: str


class Hybrid:
    """Weighted reciprocal rank fusion over `components`.

    Parameters
    ----------
    components
        Name → model; every one learns every interaction.
    weights
        Name → weight in the fusion (components without one only learn, e.g. fallbacks).
    depth
        How many items each component proposes.
    c
        The fusion constant: larger flattens the gap between the first ranks.
    fallback
        Component names tried in order for a user with no history.
    fusion
        ``"rrf"``: reciprocal rank fusion; ``"combsum"``: each list's scores min-max scaled to
        [0, 1] over its top `depth`, then summed with the weights (keeps how much a component
        prefers its first item over its tenth, which ranks discard).
    """

    def __init__(
        self,
        components: Mapping[str, Recommender],
        weights: Mapping[str, float],
        depth: int = 50,
        c: float = 10.0,
        fallback: Sequence[str] = (),
        fusion: str = "rrf",
    ) -> None:
        if fusion not in ("rrf", "combsum"):
            raise ValueError(f"fusion must be 'rrf' or 'combsum', got {fusion!r}")
        unknown = (set(weights) | set(fallback)) - set(components)
        if unknown:
            raise ValueError(f"weights/fallback name unknown components: {sorted(unknown)}")
        self.components = dict(components)
        self.weights = {name: w for name, w in weights.items() if w > 0}
        self.depth = depth
        self.c = c
        self.fallback = tuple(fallback)
        self.fusion = fusion

    def learn_one(self, user: str, item: str, ts: float, history: Sequence[str]) -> None:
        for model in self.components.values():
            model.learn_one(user, item, ts, history)

    def recommend(
        self, user: str, history: Sequence[str], ts: float, k: int, exclude: Collection[str]
    ) -> list[Scored]:
        return [(r.item, r.score) for r in self.recommend_explained(user, history, ts, k, exclude)]

    def recommend_explained(
        self, user: str, history: Sequence[str], ts: float, k: int, exclude: Collection[str]
    ) -> list[Explained]:
        """The fused top `k`, each with the component that contributed most to it."""
        if not history:
            for name in self.fallback:
                recs = self.components[name].recommend(user, history, ts, k, exclude)
                if recs:
                    return [Explained(item, score, name) for item, score in recs]
        scores: dict[str, float] = {}
        best: dict[str, tuple[float, str]] = {}
        for name, weight in self.weights.items():
            proposed = self.components[name].recommend(user, history, ts, self.depth, exclude)
            for item, gain in self._gains(proposed, weight):
                scores[item] = scores.get(item, 0.0) + gain
                if item not in best or gain > best[item][0]:
                    best[item] = (gain, name)
        ranked = sorted(scores.items(), key=lambda pair: (-pair[1], pair[0]))[:k]
        return [Explained(item, score, best[item][1]) for item, score in ranked]

    def _gains(self, proposed: list[Scored], weight: float) -> list[Scored]:
        """What each proposed item earns from this component."""
        if self.fusion == "rrf":
            return [(item, weight / (self.c + rank)) for rank, (item, _) in enumerate(proposed, 1)]
        if not proposed:
            return []
        top, bottom = proposed[0][1], proposed[-1][1]
        spread = top - bottom
        if spread <= 0:
            return [(item, weight) for item, _ in proposed]
        return [(item, weight * (score - bottom) / spread) for item, score in proposed]
