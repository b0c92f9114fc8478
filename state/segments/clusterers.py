"""River's online clusterers, made usable for segmentation: tuned defaults, seeds, fixes.

Every clusterer Tailor offers is built here, so the choice (config `segments.clusterer`),
its defaults and any fix live in one place. River's own defaults merge known segments, so each
clusterer has tuned ones (docs/decisions/0016-clusterer-defaults.md). Three River
classes iterate Python sets, so the same replay gave different segments from one process to
the next (PYTHONHASHSEED); they are replaced by order-preserving subclasses. River's KMeans
also starts so badly that it merges real segments; `WarmKMeans` starts it from k-means++.
Every clusterer is a `river.base.Clusterer` (River's base class fixes `learn_one` and
`predict_one`), the replacements by subclassing River's own classes, so none needs an adapter.

>>> model = build_clusterer("KMeans", {"n_clusters": 2, "warmup": 4}, seed=1)
>>> ids = [model.learn_predict_one({"spend": v}) for v in (0.0, 9.0, 0.5, 9.5, 0.2, 9.2)]
>>> ids[4] != ids[5], type(model).__name__
(True, 'WarmKMeans')
"""

from __future__ import annotations

import collections
import copy
import functools
import math
from collections.abc import Hashable, Mapping, Sequence
from typing import Any, cast

import numpy as np
from river import base, cluster

__all__ = [
    "CLUSTERER_DEFAULTS",
    "OrderedCluStream",
    "OrderedKMeans",
    "OrderedSTREAMKMeans",
    "WarmKMeans",
    "best_lloyd",
    "build_clusterer",
    "lloyd",
    "probe",
    "replace_centres",
    "squared_distances",
]

#: Defaults per clusterer; user params are merged over these. Chosen on synthetic personas
#: with known segments and checked on real profiles: docs/decisions/0016-clusterer-defaults.md.
CLUSTERER_DEFAULTS: dict[str, dict[str, Any]] = {
    # Five centres, moved by `halflife` of the way to each point they win, started by the
    # best of `restarts` k-means++ runs over the first `warmup` points (`WarmKMeans`).
    # Segmenter passes its own `warmup`, which wins over this one.
    "KMeans": {"n_clusters": 5, "halflife": 0.05, "sigma": 0.5, "warmup": 500, "restarts": 10},
    # River's algorithm: each chunk restarts from the same random centres, so two segments can
    # merge whatever the setting; it never adapts.
    "STREAMKMeans": {"n_clusters": 5, "chunk_size": 100, "halflife": 0.5, "sigma": 0.5},
    # Works only in a narrow band of thresholds; minimum_weight drops noise micro-clusters.
    # Renumbers its ids when it re-clusters.
    "DBSTREAM": {"clustering_threshold": 2.0, "minimum_weight": 3.0},
    # The macro step is random-start k-means over the micro-clusters, so segments can merge,
    # and ids renumber at every rebuild. micro_cluster_r_factor 8: River's 2 is much slower.
    "CluStream": {
        "n_macro_clusters": 5,
        "micro_cluster_r_factor": 8,
        "time_gap": 1000,
        "time_window": 10000,
        "sigma": 0.5,
    },
    # Broken in river 0.26.1 (radius formula, river #2004; clustering and ids, #2006/#1555;
    # fixed after the release); kept selectable. Only a narrow band of epsilon works, far
    # from River's default 0.02.
    "DenStream": {"epsilon": 4.0},
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
    replay under two PYTHONHASHSEEDs gave different segments.
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
    points, so macro-cluster ids depended on PYTHONHASHSEED.
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
            macro = OrderedKMeans(n_clusters=self.n_macro_clusters, seed=self.seed, **self.kwargs)
            for centre in self._mc_centers.values():
                macro.learn_one(centre)
            self._kmeans_mc = cast(Any, macro)  # River declares it None until the first build
            self.centers = macro.centers


class WarmKMeans(OrderedKMeans):
    """Sequential k-means that starts from k-means++ on its first `warmup` points.

    River's KMeans starts from random centres near the origin and moves only the nearest one
    per point, so the first centres to win keep winning: some centres never win a point and
    real segments merge, whatever the halflife and sigma (decision 0016). Here the first
    `warmup` points are learned as River does (so early predictions exist) and kept; then the
    centres are replaced by the best of `restarts` k-means++ + Lloyd runs on them (seeded
    numpy, once, a few ms), and learning continues with River's rule
    (`centre += halflife * (x - centre)`). `warmup=0` is River's KMeans.

    >>> km = WarmKMeans(n_clusters=2, halflife=0.1, warmup=4, seed=1)
    >>> for v in (0.0, 5.0, 0.2, 5.2):
    ...     _ = km.learn_predict_one({"x": v})
    >>> sorted(round(c["x"], 1) for c in km.centers.values())
    [0.1, 5.1]
    """

    def __init__(
        self,
        n_clusters: int = 5,
        halflife: float = 0.5,
        mu: float = 0,
        sigma: float = 1,
        p: int = 2,
        seed: int | None = None,
        warmup: int = 500,
        restarts: int = 10,
    ) -> None:
        if 0 < warmup < n_clusters:
            raise ValueError(f"warmup ({warmup}) must be 0 or at least n_clusters ({n_clusters})")
        super().__init__(
            n_clusters=n_clusters, halflife=halflife, mu=mu, sigma=sigma, p=p, seed=seed
        )
        self.warmup = warmup
        self.restarts = restarts
        self._buffer: list[dict[Hashable, Any]] | None = [] if warmup > 0 else None

    def learn_predict_one(self, x: dict[Hashable, Any]) -> int:
        if self._buffer is not None:
            self._buffer.append(dict(x))
            if len(self._buffer) >= self.warmup:
                self._restart(self._buffer)
                self._buffer = None
        return int(super().learn_predict_one(x))

    def learn_one(self, x: dict[Hashable, Any]) -> None:
        self.learn_predict_one(x)

    def _restart(self, points: list[dict[Hashable, Any]]) -> None:
        """Centres from k-means++ on the kept points; keys keep their first-seen order."""
        keys = list(dict.fromkeys(k for x in points for k in x))
        data = np.array([[x.get(k, 0.0) for k in keys] for x in points], dtype=float)
        centres = best_lloyd(data, self.n_clusters, self.restarts, np.random.default_rng(self.seed))
        draw = functools.partial(self._rng.gauss, self.mu, self.sigma)
        for i, centre in enumerate(centres):
            self.centers[i] = collections.defaultdict(draw, zip(keys, centre.tolist(), strict=True))


def _plus_plus(data: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding (Arthur & Vassilvitskii 2007): each next centre is drawn with
    probability proportional to its squared distance from the centres so far."""
    centres = [data[rng.integers(len(data))]]
    nearest = ((data - centres[0]) ** 2).sum(axis=1)
    for _ in range(1, k):
        total = nearest.sum()
        pick = rng.choice(len(data), p=nearest / total) if total > 0 else rng.integers(len(data))
        centres.append(data[pick])
        nearest = np.minimum(nearest, ((data - data[pick]) ** 2).sum(axis=1))
    return np.array(centres)


def squared_distances(data: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Point-to-centre squared distances, (n, k), without an (n, k, d) intermediate."""
    cross = data @ centres.T
    squared = (data**2).sum(axis=1)[:, None] - 2 * cross + (centres**2).sum(axis=1)[None, :]
    return np.maximum(squared, 0.0)


def lloyd(data: np.ndarray, centres: np.ndarray, iterations: int = 50) -> tuple[np.ndarray, float]:
    """Batch k-means from `centres`; an emptied cluster keeps its centre. Returns the inertia."""
    for _ in range(iterations):
        labels = squared_distances(data, centres).argmin(axis=1)
        moved = centres.copy()
        for c in range(len(centres)):
            members = data[labels == c]
            if len(members):
                moved[c] = members.mean(axis=0)
        if np.allclose(moved, centres):
            break
        centres = moved
    return centres, float(squared_distances(data, centres).min(axis=1).sum())


def best_lloyd(data: np.ndarray, k: int, restarts: int, rng: np.random.Generator) -> np.ndarray:
    """The lowest-inertia centres of `restarts` k-means++ + Lloyd runs (scikit-learn's n_init)."""
    runs = [lloyd(data, _plus_plus(data, k, rng)) for _ in range(max(1, restarts))]
    return min(runs, key=lambda run: run[1])[0]


def probe(model: Any, dims: Sequence[str], label: str) -> None:
    """Fail at start-up, not on the first event, when the params make `model` unusable
    (`label` names the clusterer and its params in the error)."""
    trial = copy.deepcopy(model)
    x = dict.fromkeys(dims, 0.0)
    try:
        for _ in range(2):
            trial.learn_one(x)
            trial.predict_one(x)
    except Exception as err:
        raise ValueError(f"{label} fails on a sample: {err!r}") from err


def replace_centres(model: OrderedKMeans, centres: Mapping[int, Mapping[str, float]]) -> None:
    """River's KMeans centres := `centres`, by raw id (a re-fit); a raw id not in it is
    dropped, so River never assigns it again. New dimensions draw as River's would."""
    current = model.centers
    draw = functools.partial(model._rng.gauss, model.mu, model.sigma)
    for raw in [raw for raw in current if raw not in centres]:
        del current[raw]
    for raw, centre in centres.items():
        current[raw] = collections.defaultdict(draw, centre)


#: Our drop-in replacements for River classes that are not reproducible as shipped.
_REPLACEMENTS: dict[str, Any] = {
    "KMeans": WarmKMeans,
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
        model = _REPLACEMENTS.get(name, getattr(cluster, name))(**merged)
    except (TypeError, ValueError) as err:
        raise ValueError(f"bad params for clusterer {name}: {merged!r}: {err}") from err
    if not isinstance(model, base.Clusterer):  # the verbs Segmenter calls
        raise TypeError(f"{type(model).__name__} is not a river.base.Clusterer")
    return model
