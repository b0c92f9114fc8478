"""Centre drift of online segments: how far their structure moved from the last stable one.

`CentreDrift` watches the structure itself: at each `check` it reports the mean distance from
the centres of a reference (the last stable structure) to the nearest current ones, in the
clusterer's standardised space (so in standard deviations), and how many centres appeared or
vanished (no counterpart within `threshold`). Raw online centres jitter too much for that
(on the stationary persona stream, 59-75 of 76 raw checks "drifted", whatever the clusterer),
so the current structure is smoothed over checks first, with centres paired by distance, not
by id, because DBSTREAM and CluStream renumber their clusters.

Points and centres are sequences of floats (lists, numpy vectors) or mappings such as River's
feature dicts; a mapping is read in the order of `keys` (default: its sorted keys at first
sight), and it pickles with everything it learned.

>>> drift = CentreDrift(threshold=1.0, smoothing=1.0, settle=0)  # raw centres, no settling
>>> drift.check({0: [0.0, 0.0], 1: [4.0, 0.0]})
DriftReading(distance=0.0, drifted=False, appeared=0, vanished=0)
>>> drift.check({0: [0.0, 0.0], 1: [4.0, 3.0]})
DriftReading(distance=1.5, drifted=True, appeared=1, vanished=1)
>>> drift.events, drift.check({0: [0.0, 0.0], 1: [4.0, 3.0]}).distance
(1, 0.0)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from operator import itemgetter
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

__all__ = ["CentreDrift", "DriftReading", "mapping_row"]

#: A track is forgotten once its weight (recency of being seen) falls below this.
_DROP_WEIGHT = 0.05
#: Hysteresis: a track joins the structure at this weight and leaves it below `_LEAVE_WEIGHT`,
#: so a segment seen in about half of the checks (a flickering one) does not come and go.
_JOIN_WEIGHT = 0.75
_LEAVE_WEIGHT = 0.25

Point = Sequence[float] | npt.NDArray[np.float64] | Mapping[str, float]
FloatArray = npt.NDArray[np.float64]


def mapping_row(x: Mapping[str, float], keys: tuple[str, ...]) -> Sequence[float]:
    """Checks membership first: River centres are defaultdicts, and reading a missing key
    would invent a random coordinate inside the model. (Key order: sorted at first sight, so
    two callers that build their dicts differently still agree.)"""
    if type(x) is dict and len(keys) > 1:  # the common case: a missing key raises by itself
        return itemgetter(*keys)(x)  # a tuple, 3x faster than a list comprehension
    missing = [k for k in keys if k not in x]
    if missing:
        raise KeyError(f"point lacks dimensions {missing}")
    return [float(x[k]) for k in keys]


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
                c = mapping_row(c, self.keys)
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
