"""Streaming quality gauges for online segments: silhouette on a recent sample, centre drift.

River's `metrics.Silhouette` is not the silhouette coefficient (it is a ratio of centre
distances, river issue #1236), so `StreamingSilhouette` computes the real one (Rousseeuw 1987):
for a point i, a(i) is its mean distance to the other points of its own cluster, b(i) the
smallest mean distance to the points of another cluster, s(i) = (b - a) / max(a, b), and the
score is the mean of s(i). Singletons score 0, as in scikit-learn. The exact value needs all
pairwise distances, so it is computed on a bounded sample: the last `window` admitted points,
each stored with the cluster id it was given when it was learned. Storing costs one row copy
per `update`; the O(window²) numpy pass runs once every `every` admitted points.

`CentreDrift` watches the structure itself: at each `check` it reports the mean distance from
the centres of a reference (the last stable structure) to the nearest current ones, in the
clusterer's standardised space (so in standard deviations), and how many centres appeared or
vanished (no counterpart within `threshold`). Raw online centres jitter too much for that
(on the stationary persona stream, 59-75 of 76 raw checks "drifted", whatever the clusterer),
so the current structure is smoothed over checks first, with centres paired by distance, not
by id, because DBSTREAM and CluStream renumber their clusters.

Points and centres are sequences of floats (lists, numpy vectors) or mappings such as River's
feature dicts; a mapping is read in the order of `keys` (default: its sorted keys at first
sight), and both classes pickle with everything they learned.

>>> sil = StreamingSilhouette(window=6, every=6)
>>> for x, label in [([0.0], 0), ([0.1], 0), ([0.2], 0), ([5.0], 1), ([5.1], 1), ([5.2], 1)]:
...     sil.update(x, label)
>>> round(sil.value, 3)
0.973
>>> drift = CentreDrift(threshold=1.0, smoothing=1.0, settle=0)  # raw centres, no settling
>>> drift.check({0: [0.0, 0.0], 1: [4.0, 0.0]})
DriftReading(distance=0.0, drifted=False, appeared=0, vanished=0)
>>> drift.check({0: [0.0, 0.0], 1: [4.0, 3.0]})
DriftReading(distance=1.5, drifted=True, appeared=1, vanished=1)
>>> drift.events, drift.check({0: [0.0, 0.0], 1: [4.0, 3.0]}).distance
(1, 0.0)

References
----------
Rousseeuw, P. J. (1987). Silhouettes: a graphical aid to the interpretation and validation of
cluster analysis. Journal of Computational and Applied Mathematics 20, 53-65.
https://doi.org/10.1016/0377-0427(87)90125-7
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from operator import itemgetter
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

__all__ = ["CentreDrift", "DriftReading", "StreamingSilhouette", "silhouette"]

#: A track is forgotten once its weight (recency of being seen) falls below this.
_DROP_WEIGHT = 0.05
#: Hysteresis: a track joins the structure at this weight and leaves it below `_LEAVE_WEIGHT`,
#: so a segment seen in about half of the checks (a flickering one) does not come and go.
_JOIN_WEIGHT = 0.75
_LEAVE_WEIGHT = 0.25

Point = Sequence[float] | npt.NDArray[np.float64] | Mapping[str, float]
FloatArray = npt.NDArray[np.float64]


def _mapping_row(x: Mapping[str, float], keys: tuple[str, ...]) -> Sequence[float]:
    """Checks membership first: River centres are defaultdicts, and reading a missing key
    would invent a random coordinate inside the model. (Key order: sorted at first sight, so
    two callers that build their dicts differently still agree.)"""
    if type(x) is dict and len(keys) > 1:  # the common case: a missing key raises by itself
        return itemgetter(*keys)(x)  # a tuple, 3x faster than a list comprehension
    missing = [k for k in keys if k not in x]
    if missing:
        raise KeyError(f"point lacks dimensions {missing}")
    return [float(x[k]) for k in keys]


#: Multiply-adds per matrix product. OpenBLAS runs a product above about 262k of them on all
#: cores, and on a busy 2-core worker that made the 500-point pass 5-10x slower (measured), so
#: the rows go through in blocks that each stay single-threaded, which also bounds the memory.
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
            x = _mapping_row(x, self.keys)
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


class DriftReading(NamedTuple):
    """One `CentreDrift.check`: distance in std units from the reference, and what changed."""

    distance: float
    drifted: bool
    appeared: int
    vanished: int


def _distances(A: FloatArray, B: FloatArray) -> FloatArray:
    """Exact Euclidean distances between the rows of A and of B (a few dozen centres)."""
    diff = A[:, None, :] - B[None, :, :]
    return np.sqrt(np.einsum("ijk,ijk->ij", diff, diff))


def _greedy_pairs(D: FloatArray, radius: float) -> list[tuple[int, int]]:
    """One-to-one (row, column) pairs, closest first, none farther than `radius`."""
    pairs: list[tuple[int, int]] = []
    rows_used: set[int] = set()
    cols_used: set[int] = set()
    for flat in np.argsort(D, axis=None, kind="stable").tolist():
        i, j = divmod(flat, D.shape[1])
        if D[i, j] > radius or len(pairs) == min(D.shape):
            break
        if i not in rows_used and j not in cols_used:
            pairs.append((i, j))
            rows_used.add(i)
            cols_used.add(j)
    return pairs


class CentreDrift:
    """Drift of the segment structure: how far the centres are from the last stable set.

    Parameters
    ----------
    threshold
        Standard deviations. A check drifts when the mean distance from the reference centres
        to the nearest current ones exceeds it, or when a centre appeared or vanished, i.e.
        has no counterpart within it.
    smoothing
        Weight of the newest centres in the smoothed structure that is compared; 1 compares
        the raw centres. River KMeans with halflife 0.5 keeps each centre near the mean of the
        last two points of its cluster: its raw centres moved 1.1-1.9 std between checks.
    settle
        Checks after a drift (and after the first one) during which the reference follows the
        smoothed structure and nothing fires, so that one move is one event; default
        round(3 / smoothing), by when the smoothed structure has covered 95% of a jump.
    match_radius
        Farthest a centre may move between two checks and still be the same segment;
        default 3 x threshold.
    keys
        Order in which mapping centres are read; default: the sorted keys of the first one.

    Each check moves every tracked centre a `smoothing` step towards its raw counterpart,
    paired greedily by distance (not by id: DBSTREAM and CluStream renumber their clusters).
    A raw centre with no counterpart starts a new track. A track's weight is an exponential
    average of "seen" over checks; it joins the structure at 3/4 and leaves it below 1/4.
    After settling the reference is frozen until the next drift: deliberately not a moving
    average, which would hide a slow creep; a creep is one event each time it adds up to
    `threshold`. `rebase` re-takes the reference by hand. An empty set of centres (an
    untrained or rebuilding model) is no reading.
    """

    def __init__(
        self,
        threshold: float = 1.0,
        smoothing: float = 0.2,
        settle: int | None = None,
        match_radius: float | None = None,
        keys: Sequence[str] | None = None,
    ) -> None:
        if not threshold > 0 or not 0 < smoothing <= 1:
            raise ValueError("threshold must be > 0 and smoothing in (0, 1]")
        self.threshold = threshold
        self.smoothing = smoothing
        self.settle = round(3 / smoothing) if settle is None else settle
        self.match_radius = 3 * threshold if match_radius is None else match_radius
        self.keys = tuple(keys) if keys is not None else None
        self._tracks: FloatArray | None = None  # smoothed centres, one row per track
        self._weights: FloatArray = np.zeros(0)
        self._counted: npt.NDArray[np.bool_] = np.zeros(0, dtype=bool)
        self._reference: FloatArray | None = None
        self._settling = 0
        self.events = 0
        self.last: DriftReading | None = None

    def _matrix(self, centres: Mapping[int, Point]) -> FloatArray:
        """Centres as rows, ordered by cluster id so float sums never depend on dict order."""
        rows: list[Sequence[float] | FloatArray] = []
        for cid in sorted(centres):
            c = centres[cid]
            if isinstance(c, Mapping):
                self.keys = self.keys or tuple(sorted(c))
                c = _mapping_row(c, self.keys)
            rows.append(c)
        return np.asarray(rows, dtype=np.float64)

    def _track(self, raw: FloatArray) -> None:
        """Move the tracks towards their raw counterparts; start and drop tracks."""
        if self._tracks is None:
            self._tracks, self._weights = raw.copy(), np.ones(len(raw))
            self._counted = np.ones(len(raw), dtype=bool)
            return
        if raw.shape[1] != self._tracks.shape[1]:
            raise ValueError(f"centres have {raw.shape[1]} dimensions, not {self._tracks.shape[1]}")
        a = self.smoothing
        pairs = _greedy_pairs(_distances(self._tracks, raw), self.match_radius)
        seen = np.zeros(len(self._tracks), dtype=bool)
        for i, j in pairs:
            self._tracks[i] += a * (raw[j] - self._tracks[i])
            seen[i] = True
        self._weights = np.where(
            seen, self._weights + a * (1 - self._weights), self._weights * (1 - a)
        )
        new = np.setdiff1d(np.arange(len(raw)), [j for _, j in pairs])
        w = self._weights
        self._counted = (w >= _JOIN_WEIGHT) | (self._counted & (w >= _LEAVE_WEIGHT))
        keep = w >= _DROP_WEIGHT
        self._tracks = np.vstack([self._tracks[keep], raw[new]])
        self._weights = np.concatenate([w[keep], np.full(len(new), a)])
        self._counted = np.concatenate([self._counted[keep], np.full(len(new), a >= _JOIN_WEIGHT)])

    def _structure(self) -> FloatArray:
        """The tracks that count (joined and not yet left)."""
        assert self._tracks is not None
        return self._tracks[self._counted]

    def _compare(self, current: FloatArray) -> DriftReading:
        assert self._reference is not None
        dist = _distances(self._reference, current)  # reference x current
        to_current, to_reference = dist.min(axis=1), dist.min(axis=0)
        appeared = int((to_reference > self.threshold).sum())
        vanished = int((to_current > self.threshold).sum())
        distance = float(to_current.mean())
        drifted = distance > self.threshold or appeared > 0 or vanished > 0
        return DriftReading(distance, drifted, appeared, vanished)

    def check(self, centres: Mapping[int, Point]) -> DriftReading:
        """Fold the current centres in, compare with the reference, re-take it after a drift."""
        if not centres:
            return DriftReading(0.0, False, 0, 0)
        first = self._tracks is None
        self._track(self._matrix(centres))
        current = self._structure()
        if first:
            self._settling = self.settle
        if not len(current) or self._reference is None:
            if len(current):
                self._reference = current
            return DriftReading(0.0, False, 0, 0)
        reading = self._compare(current)
        if self._settling > 0:
            self._settling -= 1
            self._reference = current
            reading = reading._replace(drifted=False)
        elif reading.drifted:
            self.events += 1
            self._reference = current
            self._settling = self.settle
        self.last = reading
        return reading

    def rebase(self) -> None:
        """Take the current smoothed structure as the stable one from now on."""
        if self._tracks is not None and len(self._structure()):
            self._reference = self._structure()
            self._settling = 0

    @property
    def settling(self) -> bool:
        """True while the reference still follows a structure that has just moved."""
        return self._settling > 0

    @property
    def reference(self) -> list[tuple[float, ...]]:
        """The stable centres drift is measured from (a copy), in track order."""
        if self._reference is None:
            return []
        return [tuple(row) for row in self._reference.tolist()]

    _LEARNED = ("_tracks", "_weights", "_counted", "_reference", "_settling", "events")

    def to_snapshot(self) -> dict[str, Any]:
        """Settings, the tracks and reference (arrays), the last reading as a tuple."""
        settings = ("threshold", "smoothing", "settle", "match_radius", "keys")
        data = {name: getattr(self, name) for name in (*settings, *self._LEARNED)}
        return data | {"last": None if self.last is None else tuple(self.last)}

    @classmethod
    def from_snapshot(cls, data: Mapping[str, Any]) -> CentreDrift:
        made = cls(data["threshold"], data["smoothing"], data["settle"], data["match_radius"])
        made.keys = data["keys"]
        for name in cls._LEARNED:
            setattr(made, name, data[name])
        made.last = None if data["last"] is None else DriftReading(*data["last"])
        return made
