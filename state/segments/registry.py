"""Stable, global segment numbers over an online clusterer whose own ids are not.

River's clusterers number their clusters as they please: KMeans keeps its ids but which
behaviour lands in which id depends on the first few hundred points, and DBSTREAM and
CluStream renumber every time they rebuild (only 17% of points kept their raw id across a
CluStream rebuild, see ../shared/notes/river-0.26.1.md). Consumers, rules and membership sets
need a segment id that means the same thing tomorrow, and on another run over the same data
with a different number of workers (whose arrival order differs a little). So:

* each segment keeps an *anchor*: the running mean of the points assigned to it (an
  exponentially weighted mean once it has seen ``1 / smoothing`` points), in the clusterer's
  scaled space. It moves slowly where River's centres (halflife 0.5) jump with every point;
* a raw cluster id maps to a segment through a cache; the cache is rebuilt by nearest-anchor
  matching (greedy, one to one) whenever the clusterer rebuilt its centres;
* for the first `warmup` learned points there is no segment at all (the model is still
  finding its feet); when the warm-up ends, the clusterer's centres become the first anchors
  and are numbered by their position along a seeded direction, so two runs that found the
  same structure in a different order give the same numbers. Later segments get the next
  free numbers;
* a re-fit (`tailor.state.segments.refit`) replaces the anchors with batch centres (`reseed`): each
  segment keeps its number for the centre nearest its anchor, a centre left over is a new
  segment, and a segment left over is *retired*: its number is never handed out again. From
  then on the anchors hold still between re-fits (`held`): learn points are profiles taken at
  events, the recently active ones, and would pull the batch answer back towards them
  (docs/decisions/0012-segments-refit-weekly.md).

>>> reg = SegmentRegistry(warmup=2, seed=1)
>>> centres = {3: [5.0, 5.0], 7: [0.0, 0.0]}
>>> reg.learn(raw_id=7, point=[0.0, 0.0], raw_centres=lambda: centres, token=1) is None
True
>>> reg.learn(raw_id=3, point=[5.0, 5.0], raw_centres=lambda: centres, token=1)
1
>>> reg.lookup(7, lambda: centres, token=1)
0
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["SegmentRegistry"]

Vector = Sequence[float]
#: The clusterer's centres by raw id, read on demand.
Centres = Callable[[], Mapping[int, Vector]]


def _distance2(a: Vector, b: Vector) -> float:
    """Squared Euclidean distance; `math.dist` runs in C (a generator sum cost 4x as much)."""
    distance = math.dist(a, b)
    return distance * distance


class SegmentRegistry:
    """Raw cluster ids → stable segment numbers, with a smoothed anchor per segment.

    Parameters
    ----------
    warmup
        Learned points before segments exist and get their canonical numbers.
    smoothing
        Floor of the anchors' update rate: an anchor is the plain mean of its first
        ``1 / smoothing`` points, then an exponentially weighted one, so it follows drift.
    seed
        Seeds the direction along which segments are numbered at the end of the warm-up.
    """

    def __init__(self, warmup: int = 200, smoothing: float = 0.02, seed: int = 42) -> None:
        if warmup < 1:
            raise ValueError(f"warmup must be >= 1, got {warmup}")
        if not 0.0 < smoothing <= 1.0:
            raise ValueError(f"smoothing must be in (0, 1], got {smoothing}")
        self.warmup = warmup
        self.smoothing = smoothing
        self.seed = seed
        self.anchors: dict[int, list[float]] = {}
        self.members: dict[int, int] = {}  # points assigned per segment, for the rate
        self._cache: dict[int, int] = {}
        self._token: object = None
        self.learned = 0
        self.retired: set[int] = set()
        self.held = False  # anchors move only at re-fits (set by the first `reseed`)

    @property
    def ready(self) -> bool:
        """True once the warm-up is over and segment numbers are final."""
        return self.learned >= self.warmup

    def learn(
        self,
        raw_id: int,
        point: Vector,
        raw_centres: Centres,
        token: object,
    ) -> int | None:
        """Assign a learned point's raw cluster to a segment and move that segment's anchor.

        `token` identifies the clusterer's current set of centres (it changes when the
        clusterer rebuilt them); `raw_centres()` gives those centres in the same space as
        `point`. It is called only when needed (warm-up end, a rebuild, a new raw id): reading
        the clusterer's centres costs more than the rest of a learn point here.
        Returns the segment, or None during the warm-up.
        """
        self.learned += 1
        if self.learned < self.warmup:
            return None
        if self.learned == self.warmup:
            self._start(raw_centres(), token)
        segment = self._segment(raw_id, point, raw_centres, token)
        self._move(segment, point)
        return segment

    def _start(self, raw_centres: Mapping[int, Vector], token: object) -> None:
        """Segments from the clusterer's centres as the warm-up ends, numbered canonically.

        Each anchor starts with the weight of `1 / (4 * smoothing)` points, so the first few
        members nudge it rather than replace it.
        """
        prior = max(1, round(1 / (4 * self.smoothing)))
        self.anchors = {int(raw): list(centre) for raw, centre in sorted(raw_centres.items())}
        self.members = dict.fromkeys(self.anchors, prior)
        self._cache = {raw: raw for raw in self.anchors}
        self._token = token
        self._number_canonically()

    def lookup(self, raw_id: int, raw_centres: Centres, token: object) -> int | None:
        """The segment of a raw id without learning; None during the warm-up."""
        if not self.ready:
            return None
        if token != self._token:
            self._rematch(raw_centres(), token)
        segment = self._cache.get(raw_id)
        if segment is None and self.anchors:
            centre = raw_centres().get(raw_id)
            segment = None if centre is None else self._nearest(centre, exclude=())
        return segment

    def nearest(self, point: Vector) -> int | None:
        """The segment whose anchor is nearest to `point` (ties: lowest number)."""
        if not self.ready or not self.anchors:
            return None
        return self._nearest(point, exclude=())

    def _segment(self, raw_id: int, point: Vector, raw_centres: Centres, token: object) -> int:
        if token != self._token:
            self._rematch(raw_centres(), token)
        segment = self._cache.get(raw_id)
        if segment is None:
            centre = raw_centres().get(raw_id, point)
            claimed = set(self._cache.values())
            free = [s for s in self.anchors if s not in claimed]
            segment = self._nearest(centre, exclude=claimed) if free else self._new(centre)
            self._cache[raw_id] = segment
        return segment

    def _rematch(self, raw_centres: Mapping[int, Vector], token: object) -> None:
        """Greedy one-to-one matching of the clusterer's centres to the anchors, closest first."""
        self._token = token
        self._cache = {}
        pairs = sorted(
            (_distance2(centre, anchor), raw, segment)
            for raw, centre in raw_centres.items()
            for segment, anchor in self.anchors.items()
        )
        used: set[int] = set()
        for _d, raw, segment in pairs:
            if raw not in self._cache and segment not in used:
                self._cache[raw] = segment
                used.add(segment)

    def _nearest(self, centre: Vector, exclude: Sequence[int] | set[int]) -> int:
        candidates = [s for s in self.anchors if s not in exclude] or list(self.anchors)
        return min(candidates, key=lambda s: (_distance2(centre, self.anchors[s]), s))

    def reseed(self, centres: Sequence[Vector]) -> list[int]:
        """Anchors := `centres` (a re-fit), matched to the segments closest pair first, one
        to one; returns the segments retired. Members counts stay, so the anchors keep their
        slow rate and the next points nudge the re-fitted centres rather than replace them."""
        pairs = sorted(
            (_distance2(centre, anchor), segment, i)
            for segment, anchor in self.anchors.items()
            for i, centre in enumerate(centres)
        )
        taken: dict[int, int] = {}
        for _d, segment, i in pairs:
            if segment not in taken and i not in taken.values():
                taken[segment] = i
        retired = sorted(set(self.anchors) - set(taken))
        self.retired.update(retired)
        self.held = True
        self.anchors = {segment: list(centres[i]) for segment, i in sorted(taken.items())}
        self.members = {segment: self.members[segment] for segment in self.anchors}
        for i, centre in enumerate(centres):
            if i not in taken.values():
                self._new(centre)
                self.members[max(self.anchors)] = max(1, round(1 / (4 * self.smoothing)))
        return retired

    def bind(self, raw_ids: Sequence[int]) -> dict[int, int]:
        """Raw ids → segments after a `reseed`, one to one: a raw id keeps a segment still
        live, the others take the free segments in order. Returns the binding (raw ids left
        without a segment are not in it: the clusterer should drop those centres), which
        becomes the cache; `next_raw` numbers follow for segments left without a raw id."""
        bound: dict[int, int] = {}
        for raw in sorted(raw_ids):
            segment = self._cache.get(raw)
            if segment in self.anchors and segment not in bound.values():
                bound[raw] = segment
        free = [s for s in sorted(self.anchors) if s not in bound.values()]
        spare = [raw for raw in sorted(raw_ids) if raw not in bound]
        next_raw = max(raw_ids, default=-1) + 1
        for segment in free:
            raw = spare.pop(0) if spare else next_raw
            next_raw += raw == next_raw
            bound[raw] = segment
        self._cache = dict(sorted(bound.items()))
        return dict(self._cache)

    def _new(self, centre: Vector) -> int:
        segment = max((*self.anchors, *self.retired), default=-1) + 1
        self.anchors[segment] = list(centre)
        self.members[segment] = 0
        return segment

    def _move(self, segment: int, point: Vector) -> None:
        n = self.members[segment] = self.members[segment] + 1
        if self.held:
            return
        rate = max(1.0 / n, self.smoothing)
        anchor = self.anchors[segment]
        for i, value in enumerate(point):
            anchor[i] += rate * (value - anchor[i])

    def _number_canonically(self) -> None:
        """Renumber segments 0.. by their anchors' position along a seeded direction."""
        if not self.anchors:
            return
        dims = len(next(iter(self.anchors.values())))
        rng = random.Random(self.seed)
        direction = [rng.gauss(0.0, 1.0) for _ in range(dims)]

        def position(segment: int) -> float:
            return math.fsum(a * d for a, d in zip(self.anchors[segment], direction, strict=True))

        order = sorted(self.anchors, key=lambda s: (position(s), s))
        renumber = {old: new for new, old in enumerate(order)}
        self.anchors = {renumber[s]: a for s, a in self.anchors.items()}
        self.members = {renumber[s]: n for s, n in self.members.items()}
        self._cache = {raw: renumber[s] for raw, s in self._cache.items()}

    def to_snapshot(self) -> dict[str, Any]:
        """Settings and what was learned; not the token, which is the clusterer's own
        centres object (`Segmenter.to_snapshot` keeps it with the clusterer)."""
        anchors = {segment: list(anchor) for segment, anchor in self.anchors.items()}
        return {"warmup": self.warmup, "smoothing": self.smoothing, "seed": self.seed} | {
            "anchors": anchors,
            "members": dict(self.members),
            "cache": dict(self._cache),
            "learned": self.learned,
            "retired": sorted(self.retired),
            "held": self.held,
        }

    @classmethod
    def from_snapshot(cls, data: Mapping[str, Any], token: object = None) -> SegmentRegistry:
        made = cls(data["warmup"], data["smoothing"], data["seed"])
        made.anchors = {segment: list(anchor) for segment, anchor in data["anchors"].items()}
        made.members = dict(data["members"])
        made._cache = dict(data["cache"])
        made._token = token
        made.learned = data["learned"]
        made.retired = set(data["retired"])
        made.held = data["held"]
        return made
