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

__all__ = ["CLUSTERER_DEFAULTS", "OrderedKMeans", "build_clusterer"]

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


#: Our drop-in replacements for River classes that are not reproducible as shipped.
_REPLACEMENTS: dict[str, Any] = {"KMeans": OrderedKMeans}


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
