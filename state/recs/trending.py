"""Decayed item popularity in event time: the fallback when a user has no useful history.

Every interaction adds 1 to its item, and every score halves each `halflife_s` of event time.
Decaying all items at every event would touch the whole catalogue, so scores are stored
relative to a reference time `t0`: an event at `ts` adds `2 ** ((ts - t0) / halflife_s)`, and the
real score at the newest time `now` is that sum times `2 ** ((t0 - now) / halflife_s)`. When the
exponent grows large, everything is renormalised to `t0 = now` so floats never overflow.

A sorted cache of the best `cache_size` items is kept up to date on every `add` (only a
growing item moves), the exact top list whatever the batch boundaries.
`TrendingRecommender` (and `MostPopular`, without decay) serve it: the same list for everyone.

Items are rows in order of first sight, so the snapshot is two flat sequences; the trending
is `Incremental` (`tailor.state.increments`): the changes since a mark are the ids appended
and the rows written since, and the clock. A renormalisation renumbers the rows: changes
since a mark before it are the whole snapshot (once per `RENORM_EXPONENT` half-lives).

>>> t = Trending(halflife_s=10.0)
>>> t.add("a", 0.0)
>>> t.add("b", 10.0)
>>> t.add("b", 10.0)
>>> t.top(2)
[('b', 2.0), ('a', 0.5)]
"""

from __future__ import annotations

import bisect
import heapq
import math
from collections.abc import Collection, Mapping, Sequence
from operator import itemgetter
from typing import Any, Self

import numpy as np
import numpy.typing as npt

from tailor.state import increments
from tailor.state.recs.base import Interaction, Recommender, Scored

__all__ = ["MostPopular", "Trending", "TrendingRecommender", "gathered"]

IntArray = npt.NDArray[np.int64]

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
    generation
        The increments' generation it starts in (`mark`): 0 alone; a parent that marks its
        trendings together gives a new one its own, so one mark names a point in all.
    """

    def __init__(
        self, halflife_s: float = 86400.0, cache_size: int = 200, generation: int = 0
    ) -> None:
        if not halflife_s > 0:
            raise ValueError("halflife_s must be > 0")
        self.halflife_s = halflife_s
        self.cache_size = cache_size
        self._row: dict[str, int] = {}  # item → row
        self._ids: list[str] = []  # row → item, in order of first sight
        self._weights: list[float] = []  # row → stored weight (a list: numpy's element
        # access would cost `add` ~100 ns more, a third of what it costs)
        self._t0: float | None = None
        self._now: float | None = None
        #: (-weight, item) of the best `cache_size` items, ascending = best first.
        self._cache: list[tuple[float, str]] = []
        self._cached: set[str] = set()
        # Increments: the generation written now (a parent that marks its parts together
        # passes its own to a new part), the rows written in it, each older row's last
        # generation (stamped at `mark`), the rows at each mark, and the generations in
        # which the rows were last renumbered (made, renormalised) and last written (rows
        # written in the current generation are in `_touched` until the next mark).
        self._gen = generation
        self._touched: set[int] = set()
        self._stamps: IntArray = np.zeros(0, dtype=np.int64)
        self._lengths: dict[int, int] = {}
        self._renumbered = generation
        self._written = generation

    def add(self, item: str, ts: float, weight: float = 1.0) -> None:
        """Add an interaction of `weight` with `item` at event time `ts` (any order of ts)."""
        if self._t0 is None:
            self._t0 = ts
        if self._now is None or ts > self._now:
            self._now = ts
            if (ts - self._t0) / self.halflife_s > RENORM_EXPONENT:
                self._renormalise()  # before adding, so a jump far ahead cannot overflow
        row, weights = self._row.get(item), self._weights
        if row is None:
            row = self._row[item] = len(weights)
            self._ids.append(item)
            weights.append(0.0)
        old = weights[row]
        new = old + weight * 2.0 ** ((ts - self._t0) / self.halflife_s)
        weights[row] = new
        self._touched.add(row)
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
        """Rescale to `t0 = now` and drop the forgotten items (rows renumbered, in order)."""
        assert self._t0 is not None and self._now is not None
        factor = 2.0 ** ((self._t0 - self._now) / self.halflife_s)
        kept = [
            (item, weight * factor)
            for item, weight in zip(self._ids, self._weights, strict=True)
            if weight * factor >= FORGET_BELOW
        ]
        self._ids = [item for item, _ in kept]
        self._weights = [weight for _, weight in kept]
        self._row = {item: row for row, item in enumerate(self._ids)}
        self._t0 = self._now
        self._renumbered = self._gen  # changes since an older mark are the whole
        self._touched.clear()
        self._stamps = np.zeros(0, dtype=np.int64)
        self._lengths.clear()
        self.refresh()  # rescaled weights: rebuild rather than trust rounding to keep order

    def _decay(self) -> float:
        """Multiplier from stored weights to scores at the newest event time."""
        if self._t0 is None or self._now is None:
            return 1.0
        return 2.0 ** ((self._t0 - self._now) / self.halflife_s)

    def refresh(self) -> None:
        """Rebuild the top cache from all scores (it is kept exact anyway; a consistency reset)."""
        ranked = zip([-weight for weight in self._weights], self._ids, strict=True)
        self._cache = heapq.nsmallest(self.cache_size, ranked)
        self._cached = {item for _, item in self._cache}
        self._written = self._gen

    @property
    def now(self) -> float | None:
        """The newest event time seen, which `top` and `score` decay to (None before any)."""
        return self._now

    def score(self, item: str) -> float:
        """Decayed score of `item` at the newest event time seen (0 when unknown)."""
        row = self._row.get(item)
        return (0.0 if row is None else self._weights[row]) * self._decay()

    def top(self, k: int, exclude: Collection[str] = ()) -> list[tuple[str, float]]:
        """The `k` most popular items not in `exclude`, decayed to the newest time; ties by id."""
        if k <= 0:
            return []
        picked = _first(self._cache, k, exclude)
        if len(picked) < k and len(self._cache) < len(self._ids):
            # Exclusions ate the cache (a heavy user): grow it to cover them, once, rather
            # than rank the whole catalogue on every call.
            self.cache_size = min(max(2 * self.cache_size, k + len(exclude)), MAX_CACHE)
            self.refresh()
            picked = _first(self._cache, k, exclude)
            if len(picked) < k and len(self._cache) < len(self._ids):
                ranked = zip([-weight for weight in self._weights], self._ids, strict=True)
                picked = _first(sorted(ranked), k, exclude)
        decay = self._decay()
        return [(item, -neg_weight * decay) for neg_weight, item in picked]

    def __len__(self) -> int:
        return len(self._ids)

    def to_snapshot(self) -> dict[str, Any]:
        """Settings, clock and stored weights (ids and one array). The top cache is left out:
        it is the exact top list of the weights, which `from_snapshot` rebuilds (`refresh`),
        and a category's trendings' caches together are as long as the catalogue."""
        return {
            "halflife_s": self.halflife_s,
            "cache_size": self.cache_size,
            "t0": self._t0,
            "now": self._now,
            "items": list(self._ids),
            "weights": np.array(self._weights, dtype=np.float64),
        }

    @classmethod
    def from_snapshot(cls, data: Mapping[str, Any]) -> Trending:
        """From `to_snapshot` data (or data written with the cached ids, which the rebuilt
        cache equals)."""
        data = increments.whole(data, cls)
        made = cls(data["halflife_s"], data["cache_size"])
        made._t0, made._now = data["t0"], data["now"]
        made._ids = list(data["items"])
        made._weights = np.asarray(data["weights"], dtype=np.float64).tolist()
        made._row = {item: row for row, item in enumerate(made._ids)}
        made.refresh()
        return made

    # ------------------------------------------------------------------ increments

    def mark(self) -> int:
        """Stamp the rows written in the current generation with it and start the next."""
        n = len(self._ids)
        if len(self._stamps) < n:
            grown = np.zeros(max(n, 2 * len(self._stamps)), dtype=np.int64)
            grown[: len(self._stamps)] = self._stamps
            self._stamps = grown
        if self._touched:
            self._stamps[_rows(self._touched)] = self._gen
            self._touched.clear()
            self._written = self._gen
        self._lengths[self._gen] = n
        self._gen += 1
        return self._gen - 1

    def changed_since(self, mark: int) -> bool:
        """Whether anything was written after `mark` (a parent leaves out unchanged parts)."""
        return bool(self._touched) or self._written > mark

    def changes_since(self, mark: int) -> dict[str, Any]:
        """The ids appended since `mark`, the rows written since (the appended ones among
        them, in no particular order: neither filtered nor sorted, which cost more than the
        rest) with their weights, or all weights without rows when that is cheaper, and the
        clock; as lists (a category's trending holds a hundred items: numpy's per-call cost
        would be most of it). The whole snapshot if the rows were renumbered since."""
        if mark < self._renumbered:
            return {"whole": self.to_snapshot()}
        rows, weights = self.rows_written_since(mark), self._weights
        everything = 2 * len(rows) > len(weights)
        return {
            "cache_size": self.cache_size,
            "t0": self._t0,
            "now": self._now,
            "items": self._ids[self._lengths[mark] :],
            "rows": None if everything else rows,
            "weights": weights[:] if everything else gathered(weights, rows),
        }

    def changes_into(
        self,
        mark: int,
        clocks: list[tuple[int, float | None, float | None]],
        counts: list[int],
        rows: list[int],
        weights: list[float],
        items: list[str],
    ) -> None:
        """`changes_since(mark)` appended to a parent's record of many trendings' changes
        (`CategoryPopular.changes_since`; one call, as a parent makes hundreds): the clock,
        the counts of rows written (-1: all, the weights of every row follow) and appended,
        the rows written, their weights and the ids appended. Only for a `mark` not before
        the last renumbering (`renumbered_since`)."""
        written, values, length = self.rows_written_since(mark), self._weights, self._lengths[mark]
        clocks.append((self.cache_size, self._t0, self._now))
        if 2 * len(written) > len(values):
            counts += (-1, len(values) - length)
            weights += values
        else:
            counts += (len(written), len(values) - length)
            rows += written
            weights += gathered(values, written)
        items += self._ids[length:]

    def written_since(self, mark: int) -> list[int]:
        """The rows there were at `mark` written since, ascending (from the stamps: for a
        mark older than the last)."""
        length = self._lengths[mark]
        changed = self._stamps[:length] > mark
        touched = _rows(self._touched)
        changed[touched[touched < length]] = True
        return np.flatnonzero(changed).tolist()

    def rows_written_since(self, mark: int) -> list[int]:
        """Every row written since `mark`, the rows appended since among them, in no
        particular order (no filtering or sorting: what a parent gathering many trendings'
        changes wants). Only for a `mark` not before the last renumbering."""
        if mark == self._gen - 1:  # the last mark: what was written since is `_touched`
            return list(self._touched)
        return self.written_since(mark) + list(range(self._lengths[mark], len(self._ids)))

    def renumbered_since(self, mark: int) -> bool:
        """Whether the rows were renumbered after `mark` (its changes are then the whole)."""
        return mark < self._renumbered

    @classmethod
    def patched(cls, whole: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
        """`whole` (the snapshot at a mark) with `changes_since` that mark applied."""
        if "whole" in changes:
            return dict(changes["whole"])
        values = np.array(changes["weights"], dtype=np.float64)
        if changes["rows"] is None:
            weights = values
        else:  # every appended row is among the rows written
            weights = np.empty(len(whole["weights"]) + len(changes["items"]), dtype=np.float64)
            weights[: len(whole["weights"])] = whole["weights"]
            weights[np.array(changes["rows"], dtype=np.int64)] = values
        return {
            "halflife_s": whole["halflife_s"],
            "cache_size": changes["cache_size"],
            "t0": changes["t0"],
            "now": changes["now"],
            "items": [*whole["items"], *changes["items"]],
            "weights": weights,
        }


class TrendingRecommender(Recommender):
    """Decayed popularity in event time (`Trending`): the same list for everyone."""

    reason = "trending now"

    def __init__(self, halflife_s: float = 86400.0, cache_size: int = 200) -> None:
        self.trending = Trending(halflife_s, cache_size)

    def learn_one(
        self, event: Interaction, history: Sequence[str], exclude: Collection[str] = ()
    ) -> None:
        self.trending.add(event.item, event.ts, event.weight)

    def recommend(
        self, user: str, history: Sequence[str], ts: float, k: int, exclude: Collection[str]
    ) -> list[Scored]:
        return self.trending.top(k, exclude)

    def score(self, user: str, history: Sequence[str], items: Sequence[str]) -> list[float]:
        return [self.trending.score(item) for item in items]

    def why(self, user: str, history: Sequence[str], items: Sequence[str]) -> list[str]:
        return [self.reason] * len(items)

    def forget(self, user: str, history: Sequence[str]) -> None:
        """Nothing per user: decayed counts over everyone."""

    def to_snapshot(self) -> dict[str, Any]:
        return {"kind": type(self).__name__, "trending": increments.part(self.trending)}

    @classmethod
    def from_snapshot(
        cls, data: Mapping[str, Any], parts: Mapping[str, Recommender] | None = None
    ) -> Self:
        made = cls.__new__(cls)
        made.trending = Trending.from_snapshot(data["trending"])
        return made


class MostPopular(TrendingRecommender):
    """All-time popularity (no decay): the baseline every streaming recommender is held to."""

    reason = "popular"

    def __init__(self, cache_size: int = 200) -> None:
        super().__init__(math.inf, cache_size)


def gathered(weights: list[float], rows: list[int]) -> list[float]:
    """`[weights[r] for r in rows]`, a third faster (an itemgetter of one row returns it bare)."""
    if len(rows) < 2:
        return [weights[r] for r in rows]
    return list(itemgetter(*rows)(weights))


def _rows(rows: set[int]) -> IntArray:
    return np.fromiter(rows, dtype=np.int64, count=len(rows))


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
