"""River's online clusterers, made usable for segmentation: tuned defaults, seeds, fixes.

Every clusterer Tailor offers is built here, so the choice (config `segments.clusterer`),
its defaults and any reproducibility fix live in one place. Defaults are measured (see
`benchmarks/segments.py` and ../shared/notes/river-0.26.1.md): River's own collapse.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from typing import Any

from river import cluster

__all__ = [
    "CLUSTERER_DEFAULTS",
    "OrderedCluStream",
    "OrderedKMeans",
    "OrderedSTREAMKMeans",
    "build_clusterer",
]

#: Defaults per clusterer, measured in /work/shared/notes/river-0.26.1.md: River's own defaults
#: collapse (KMeans sigma=1 fails on some seeds, DBSTREAM threshold 1 splits into dozens).
#: User params are merged over these. DenStream is accepted but broken in river 0.26.1.
CLUSTERER_DEFAULTS: dict[str, dict[str, Any]] = {
    "KMeans": {"n_clusters": 6, "halflife": 0.5, "sigma": 0.5},
    "STREAMKMeans": {"n_clusters": 6, "chunk_size": 100, "halflife": 0.5, "sigma": 0.5},
    "DBSTREAM": {"clustering_threshold": 2.0},
    "CluStream": {
        "n_macro_clusters": 6,
        "micro_cluster_r_factor": 8,
        "time_gap": 1000,
        "time_window": 10000,
        "sigma": 0.5,
    },
    "DenStream": {},
}
#: Clusterers that take a `seed` (STREAMKMeans passes it on to its inner KMeans).
_SEEDED = frozenset({"KMeans", "STREAMKMeans", "CluStream"})


class OrderedKMeans(cluster.KMeans):
    """River's KMeans, with distances summed over the features in their fixed order.

    River's `predict_one` iterates a *set* of keys. Set order follows string hashing, which
    Python randomises per process, so the order in which new centre coordinates are drawn
    from the seeded RNG, and the float sums, changed between two runs of the same replay:
    the same input gave different clusters. Iterating the point's own (fixed) key order makes
    it reproducible, and about twice as fast. Same model, same learning rule otherwise.

    >>> km = OrderedKMeans(n_clusters=2, halflife=0.5, sigma=0.5, seed=1)
    >>> a = km.learn_predict_one({"x": 0.0, "y": 0.0})
    >>> km.predict_one({"x": 0.0, "y": 0.0}) == a
    True
    """

    def predict_one(self, x: dict[Hashable, Any]) -> int:
        best, best_distance, p = 0, math.inf, self.p
        for c, center in self.centers.items():
            distance = 0.0
            if p == 2:  # the default: a product is cheaper than abs() and a power
                for k, v in x.items():
                    d = center[k] - v
                    distance += d * d
            else:
                for k, v in x.items():
                    distance += abs(center[k] - v) ** p
            if distance < best_distance:
                best, best_distance = c, distance
        return best


class OrderedSTREAMKMeans(cluster.STREAMKMeans):
    """River's STREAMKMeans, with `OrderedKMeans` for the per-chunk and the global k-means.

    River builds plain `cluster.KMeans` inside, so it inherits the set-order problem: the same
    replay under two PYTHONHASHSEEDs gave different segments (measured on 2,000 personas).
    Same algorithm otherwise: each chunk of `chunk_size` points is clustered by a fresh
    k-means, whose centres then update the global k-means.

    >>> sk = OrderedSTREAMKMeans(chunk_size=2, n_clusters=2, halflife=0.5, sigma=0.5, seed=1)
    >>> for v in (0.0, 0.1, 5.0, 5.1):
    ...     sk.learn_one({"x": v})
    >>> sk.predict_one({"x": 0.0}) != sk.predict_one({"x": 5.0})
    True
    """

    def __init__(self, chunk_size: int = 10, n_clusters: int = 2, **kwargs: Any) -> None:
        super().__init__(chunk_size=chunk_size, n_clusters=n_clusters, **kwargs)
        self._kmeans = OrderedKMeans(n_clusters=n_clusters, **kwargs)

    def learn_one(self, x: dict[Hashable, Any], w: float | None = None) -> None:
        self.time_stamp += 1
        index = self.time_stamp % self.chunk_size
        if index == 1 or self.chunk_size == 1:
            self._temp_chunk = {}
        self._temp_chunk[len(self._temp_chunk)] = x
        if index == 0:
            chunk_kmeans = OrderedKMeans(n_clusters=self.n_clusters, **self.kwargs)
            for point in self._temp_chunk.values():
                chunk_kmeans.learn_one(point)
            for centre in chunk_kmeans.centers.values():
                self._kmeans.learn_one(centre)
        self.centers = self._kmeans.centers


class OrderedCluStream(cluster.CluStream):
    """River's CluStream, with the macro-clusters rebuilt by `OrderedKMeans`.

    River runs a plain `cluster.KMeans` over the micro-cluster centres every `time_gap`
    points, so macro-cluster ids depended on PYTHONHASHSEED (measured on 2,000 personas).
    The micro-cluster part is order-safe; only the macro step is redone, from the same
    centres with the same seed (River's own k-means result is dropped; it runs over
    `max_micro_clusters` points once per `time_gap` events, so the waste is negligible).

    >>> cs = OrderedCluStream(n_macro_clusters=2, time_gap=4, max_micro_clusters=3, seed=1)
    >>> for v in (0.0, 5.0, 0.1, 5.1, 0.2, 5.2):
    ...     cs.learn_one({"x": v})
    >>> isinstance(cs.predict_one({"x": 0.0}), int)
    True
    """

    def learn_one(self, x: dict[Hashable, Any], w: float = 1.0) -> None:
        super().learn_one(x, w)
        if self._timestamp % self.time_gap == self.time_gap - 1:
            self._kmeans_mc = OrderedKMeans(
                n_clusters=self.n_macro_clusters, seed=self.seed, **self.kwargs
            )
            for centre in self._mc_centers.values():
                self._kmeans_mc.learn_one(centre)
            self.centers = self._kmeans_mc.centers


#: Our drop-in replacements for River classes that are not reproducible as shipped.
_REPLACEMENTS: dict[str, Any] = {
    "KMeans": OrderedKMeans,
    "STREAMKMeans": OrderedSTREAMKMeans,
    "CluStream": OrderedCluStream,
}


def build_clusterer(name: str, params: Mapping[str, Any] | None, seed: int) -> Any:
    """The named River clusterer with defaults, user params and seed; ValueError when unusable."""
    if name not in CLUSTERER_DEFAULTS:
        known = ", ".join(sorted(CLUSTERER_DEFAULTS))
        raise ValueError(f"unknown clusterer {name!r}: choose one of {known}")
    merged = {**CLUSTERER_DEFAULTS[name], **dict(params or {})}
    if name in _SEEDED:
        merged.setdefault("seed", seed)
    try:
        return _REPLACEMENTS.get(name, getattr(cluster, name))(**merged)
    except (TypeError, ValueError) as err:
        raise ValueError(f"bad params for clusterer {name}: {merged!r}: {err}") from err
