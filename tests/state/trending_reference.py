"""`Trending` as it was before its rows became append-only and incremental (state/recs/trending.py
before issue 22 step 6), verbatim but for this docstring: a dict item -> weight. The reference
the row-ordered `Trending` must equal in rankings, scores, ties and snapshots
(tests/state/test_trending_rows.py)."""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Collection, Mapping
from typing import Any

import numpy as np

__all__ = ["Trending"]

#: Renormalise once stored weights reach 2**RENORM_EXPONENT (far below float overflow).
RENORM_EXPONENT = 256.0
#: The top cache never grows past this many items (each learn costs a bisect into it).
MAX_CACHE = 10_000
#: Scores below this (in units of one fresh event) are dropped at renormalisation.
FORGET_BELOW = 1e-9


class Trending:
    """Exponentially decayed popularity per item.

    Parameters
    ----------
    halflife_s
        Event-time seconds after which an interaction counts half.
    cache_size
        Items kept in the sorted top cache; `top` falls back to a full ranking only when
        exclusions eat through the whole cache.
    """

    def __init__(self, halflife_s: float = 86400.0, cache_size: int = 200) -> None:
        if not halflife_s > 0:
            raise ValueError("halflife_s must be > 0")
        self.halflife_s = halflife_s
        self.cache_size = cache_size
        self._scores: dict[str, float] = {}
        self._t0: float | None = None
        self._now: float | None = None
        #: (-weight, item) of the best `cache_size` items, ascending = best first.
        self._cache: list[tuple[float, str]] = []
        self._cached: set[str] = set()

    def add(self, item: str, ts: float, weight: float = 1.0) -> None:
        """Add an interaction of `weight` with `item` at event time `ts` (any order of ts)."""
        if self._t0 is None:
            self._t0 = ts
        if self._now is None or ts > self._now:
            self._now = ts
            if (ts - self._t0) / self.halflife_s > RENORM_EXPONENT:
                self._renormalise()  # before adding, so a jump far ahead cannot overflow
        old = self._scores.get(item, 0.0)
        new = old + weight * 2.0 ** ((ts - self._t0) / self.halflife_s)
        self._scores[item] = new
        self._update_cache(item, old, new)

    def _update_cache(self, item: str, old: float, new: float) -> None:
        """Keep `_cache` the exact top list: only `item` moved, and only upwards."""
        cache, key = self._cache, (-new, item)
        if item in self._cached:
            at = bisect.bisect_left(cache, (-old, item))
            if new >= old:  # it moves up (or stays): its place is found among those above
                to = bisect.bisect_left(cache, key, 0, at)
                if to == at:
                    cache[at] = key
                else:
                    del cache[at]
                    cache.insert(to, key)
                return
            del cache[at]
        elif len(cache) >= self.cache_size:
            if key >= cache[-1]:
                return
            self._cached.discard(cache.pop()[1])
        bisect.insort(cache, key)
        self._cached.add(item)

    def _renormalise(self) -> None:
        assert self._t0 is not None and self._now is not None
        factor = 2.0 ** ((self._t0 - self._now) / self.halflife_s)
        self._scores = {
            item: score * factor
            for item, score in self._scores.items()
            if score * factor >= FORGET_BELOW
        }
        self._t0 = self._now
        self.refresh()  # rescaled weights: rebuild rather than trust rounding to keep order

    def _decay(self) -> float:
        """Multiplier from stored weights to scores at the newest event time."""
        if self._t0 is None or self._now is None:
            return 1.0
        return 2.0 ** ((self._t0 - self._now) / self.halflife_s)

    def refresh(self) -> None:
        """Rebuild the top cache from all scores (it is kept exact anyway; a consistency reset)."""
        self._cache = heapq.nsmallest(self.cache_size, ((-w, i) for i, w in self._scores.items()))
        self._cached = {item for _, item in self._cache}

    def score(self, item: str) -> float:
        """Decayed score of `item` at the newest event time seen (0 when unknown)."""
        return self._scores.get(item, 0.0) * self._decay()

    def top(self, k: int, exclude: Collection[str] = ()) -> list[tuple[str, float]]:
        """The `k` most popular items not in `exclude`, decayed to the newest time; ties by id."""
        if k <= 0:
            return []
        picked = _first(self._cache, k, exclude)
        if len(picked) < k and len(self._cache) < len(self._scores):
            # Exclusions ate the cache (a heavy user): grow it to cover them, once, rather
            # than rank the whole catalogue on every call (266 ms at 1M items, measured).
            self.cache_size = min(max(2 * self.cache_size, k + len(exclude)), MAX_CACHE)
            self.refresh()
            picked = _first(self._cache, k, exclude)
            if len(picked) < k and len(self._cache) < len(self._scores):
                picked = _first(sorted((-w, i) for i, w in self._scores.items()), k, exclude)
        decay = self._decay()
        return [(item, -neg_weight * decay) for neg_weight, item in picked]

    def __len__(self) -> int:
        return len(self._scores)

    def to_snapshot(self) -> dict[str, Any]:
        """Settings, clock, stored weights (ids and one array) and the cached top ids."""
        return {
            "halflife_s": self.halflife_s,
            "cache_size": self.cache_size,
            "t0": self._t0,
            "now": self._now,
            "items": list(self._scores),
            "weights": np.fromiter(self._scores.values(), np.float64, len(self._scores)),
            "cache": [item for _, item in self._cache],
        }

    @classmethod
    def from_snapshot(cls, data: Mapping[str, Any]) -> Trending:
        made = cls(data["halflife_s"], data["cache_size"])
        made._t0, made._now = data["t0"], data["now"]
        made._scores = dict(zip(data["items"], data["weights"].tolist(), strict=True))
        made._cache = [(-made._scores[item], item) for item in data["cache"]]
        made._cached = set(data["cache"])
        return made


def _first(
    ranked: list[tuple[float, str]], k: int, exclude: Collection[str]
) -> list[tuple[float, str]]:
    picked: list[tuple[float, str]] = []
    for entry in ranked:
        if entry[1] not in exclude:
            picked.append(entry)
            if len(picked) == k:
                break
    return picked
