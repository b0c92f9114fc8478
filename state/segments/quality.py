"""Streaming quality gauges for online segments: silhouette on a recent sample (centre drift
is `tailor.state.segments.drift`).

River's `metrics.Silhouette` is not the silhouette coefficient (it is a ratio of centre
distances, river issue #1236), so `StreamingSilhouette` computes the real one (Rousseeuw 1987):
for a point i, a(i) is its mean distance to the other points of its own cluster, b(i) the
smallest mean distance to the points of another cluster, s(i) = (b - a) / max(a, b), and the
score is the mean of s(i). Singletons score 0, as in scikit-learn. The exact value needs all
pairwise distances, so it is computed on a bounded sample: the last `window` admitted points,
each stored with the cluster id it was given when it was learned. Storing costs one row copy
per `update`; the O(window²) numpy pass runs once every `every` admitted points.

Points are sequences of floats (lists, numpy vectors) or mappings such as River's feature
dicts; a mapping is read in the order of `keys` (default: its sorted keys at first
sight), and it pickles with everything it learned.

>>> sil = StreamingSilhouette(window=6, every=6)
>>> for x, label in [([0.0], 0), ([0.1], 0), ([0.2], 0), ([5.0], 1), ([5.1], 1), ([5.2], 1)]:
...     sil.update(x, label)
>>> round(sil.value, 3)
0.973

References
----------
Rousseeuw, P. J. (1987). Silhouettes: a graphical aid to the interpretation and validation of
cluster analysis. Journal of Computational and Applied Mathematics 20, 53-65.
https://doi.org/10.1016/0377-0427(87)90125-7
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from tailor.state.segments.drift import CentreDrift, DriftReading, FloatArray, Point, mapping_row

__all__ = ["CentreDrift", "DriftReading", "StreamingSilhouette", "silhouette"]


#: Multiply-adds per matrix product. OpenBLAS runs a product above about 262k of them on all
#: cores, which on a busy worker competes with its other threads and slows the pass several
#: times over, so the rows go through in blocks that each stay single-threaded, which also
#: bounds the memory.
_BLOCK_WORK = 200_000


def _cluster_distance_sums(X: FloatArray, codes: npt.NDArray[np.intp], k: int) -> FloatArray:
    """Sum of Euclidean distances from each point to the points of each cluster (n x k).

    Distances come from the Gram trick, as in scikit-learn, on centred data so the squared
    norms stay small and cancellation does not eat the digits of close pairs.
    """
    n = len(X)
    Xc = X - X.mean(axis=0)
    sq = np.einsum("ij,ij->i", Xc, Xc)
    one_hot = np.zeros((n, k))
    one_hot[np.arange(n), codes] = 1.0
    sums = np.empty((n, k))
    rows = max(1, _BLOCK_WORK // (n * max(1, X.shape[1])))
    for start in range(0, n, rows):
        stop = min(n, start + rows)
        d2 = sq[start:stop, None] + sq[None, :] - 2.0 * (Xc[start:stop] @ Xc.T)
        np.maximum(d2, 0.0, out=d2)
        d2[np.arange(stop - start), np.arange(start, stop)] = 0.0
        np.sqrt(d2, out=d2)
        sums[start:stop] = d2 @ one_hot
    return sums


def silhouette(X: FloatArray, labels: npt.NDArray[np.int64]) -> float | None:
    """Mean silhouette coefficient of `X` under `labels`, with scikit-learn's conventions.

    None when it is undefined: fewer than 2 clusters, or every point its own cluster.
    """
    _, codes = np.unique(labels, return_inverse=True)
    n = len(codes)
    k = int(codes.max()) + 1 if n else 0
    if not 1 < k < n:
        return None
    freqs = np.bincount(codes, minlength=k).astype(np.float64)
    sums = _cluster_distance_sums(X, codes, k)
    rows = np.arange(n)
    own = sums[rows, codes].copy()
    sums[rows, codes] = np.inf
    b = (sums / freqs).min(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        a = own / (freqs[codes] - 1.0)  # 0/0 = nan for singletons ...
        s = (b - a) / np.maximum(a, b)
    return float(np.nan_to_num(s).mean())  # ... and nan scores count as 0


class StreamingSilhouette:
    """Silhouette coefficient over a sliding window of recently labelled points.

    Parameters
    ----------
    window
        Points kept; the exact pass costs window² distances (500: about a millisecond).
    every
        Admitted points between two recomputations, run inside `update`; `value` is the score
        as of the last one. The default (once per window turnover) adds about 3 µs per update
        on average to the 1-2 µs copy.
    sample_rate
        Probability that an `update` is admitted (seeded): below 1 the same window spans a
        longer stretch of the stream for the same cost.
    seed
        Seeds the admission draws.
    keys
        Order in which mapping points are read; default: the sorted keys of the first one.

    Labels are the cluster ids given at learn time and are never revised. A clusterer that
    renumbers its clusters mixes old and new ids in the window until `window` points have
    passed, and the score dips meanwhile: that is honest, the segments did change.
    """

    def __init__(
        self,
        window: int = 500,
        every: int = 500,
        sample_rate: float = 1.0,
        seed: int = 42,
        keys: Sequence[str] | None = None,
    ) -> None:
        if window < 2 or every < 1:
            raise ValueError("window must be >= 2 and every >= 1")
        if not 0.0 < sample_rate <= 1.0:
            raise ValueError("sample_rate must be in (0, 1]")
        self.window = window
        self.every = every
        self.sample_rate = sample_rate
        self.seed = seed
        self.keys = tuple(keys) if keys is not None else None
        self._rng = random.Random(seed)
        self._X: FloatArray | None = None  # allocated at the first point, when d is known
        self._labels = np.zeros(window, dtype=np.int64)
        self._next = 0
        self._size = 0
        self._pending = 0
        self._value: float | None = None

    def update(self, x: Point, label: int) -> None:
        """Remember `x` with the cluster id it was just given; recompute every `every` points."""
        if self.sample_rate < 1.0 and self._rng.random() >= self.sample_rate:
            return
        if isinstance(x, Mapping):
            self.keys = self.keys or tuple(sorted(x))
            x = mapping_row(x, self.keys)
        if self._X is None:
            self._X = np.zeros((self.window, len(x)))
        i = self._next
        self._X[i] = x
        self._labels[i] = label
        self._next = (i + 1) % self.window
        if self._size < self.window:
            self._size += 1
        self._pending += 1
        if self._pending >= self.every:
            self.refresh()

    def refresh(self) -> float | None:
        """Recompute now on the current window (points with non-finite coordinates are left out)."""
        self._pending = 0
        if self._X is None:
            return None
        X, labels = self._X[: self._size], self._labels[: self._size]
        finite = np.isfinite(X).all(axis=1)
        if not finite.all():
            X, labels = X[finite], labels[finite]
        self._value = silhouette(X, labels)
        return self._value

    @property
    def value(self) -> float | None:
        """Score in [-1, 1] as of the last recomputation; None until 2 clusters are defined."""
        return self._value

    @property
    def n_points(self) -> int:
        """Points in the window now."""
        return self._size

    def to_snapshot(self) -> dict[str, Any]:
        """Settings, the sampler's state, the window (arrays) and where it stands."""
        names = ("window", "every", "sample_rate", "seed", "keys", "_X", "_labels", "_next")
        return {name: getattr(self, name) for name in (*names, "_size", "_pending", "_value")} | {
            "rng": self._rng.getstate()
        }

    @classmethod
    def from_snapshot(cls, data: Mapping[str, Any]) -> StreamingSilhouette:
        made = cls(data["window"], data["every"], data["sample_rate"], data["seed"], data["keys"])
        made._rng.setstate(data["rng"])
        for name in ("_X", "_labels", "_next", "_size", "_pending", "_value"):
            setattr(made, name, data[name])
        return made
