"""The co-occurrence model as it was before its neighbours were packed
(`tailor.state.recs.neighbour_pool`):
one `Neighbours` object per item row, learning in Python. Kept verbatim (docstrings aside, and
with the later fix for items of count 0 that `CoOccurrence._scores` has too; the ranking of
candidates, which packing did not touch, is `tailor.state.recs.top_k`'s) as
the reference the packed model must equal output for output (`test_cooc_packed_equal.py`)
and as the "old" side of `benchmarks/cooc_store.py`.
"""

from __future__ import annotations

import itertools
from array import array
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from tailor.state.recs.top_k import top_candidates

__all__ = ["CoOccurrence", "Neighbours"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
DENSE_FACTOR = 16
INT32_MAX = int(np.iinfo(np.int32).max)
_INITIAL = 8


class Neighbours:
    __slots__ = ("_counts", "_rows", "_slot")

    def __init__(self) -> None:
        self._slot: dict[int, int] = {}
        self._rows = _zeros(_INITIAL)
        self._counts = _zeros(_INITIAL)

    @classmethod
    def of(cls, rows: IntArray, counts: IntArray) -> Neighbours:
        made = cls()
        made.__setstate__((rows, counts))
        return made

    def add(self, row: int, weight: int) -> None:
        slot = self._slot.get(row)
        if slot is None:
            slot = self._slot[row] = len(self._slot)
            if slot == len(self._rows):
                self._grow()
            self._rows[slot] = row
            self._counts[slot] = weight
        else:
            self._counts[slot] += weight

    def add_many(self, rows: list[int], weight: int) -> None:
        slots, counts = (self._slot, self._counts)
        for row in rows:
            slot = slots.get(row)
            if slot is None:
                slot = slots[row] = len(slots)
                if slot == len(self._rows):
                    self._grow()
                    counts = self._counts
                self._rows[slot] = row
                counts[slot] = weight
            else:
                counts[slot] += weight

    def subtract(self, row: int, weight: int) -> None:
        slot = self._slot.get(row)
        if slot is None:
            return
        left = int(self._counts[slot]) - weight
        if left > 0:
            self._counts[slot] = left
            return
        last = len(self._slot) - 1
        del self._slot[row]
        if slot != last:
            moved = int(self._rows[last])
            self._rows[slot], self._counts[slot] = (moved, self._counts[last])
            self._slot[moved] = slot

    def count(self, row: int) -> int:
        slot = self._slot.get(row)
        return 0 if slot is None else int(self._counts[slot])

    def view(self) -> tuple[IntArray, IntArray]:
        n = len(self._slot)
        return (np.frombuffer(self._rows, np.int64, n), np.frombuffer(self._counts, np.int64, n))

    def prune(self, keep: int, name: Callable[[int], str]) -> None:
        rows, counts = self.view()
        if len(rows) <= keep:
            return
        cutoff = np.partition(counts, len(counts) - keep)[len(counts) - keep]
        above = np.flatnonzero(counts > cutoff)
        tied = np.flatnonzero(counts == cutoff)
        wanted = keep - len(above)
        if wanted < len(tied):
            slot = self._slot
            named = sorted(rows[tied].tolist(), key=name)[:wanted]
            tied = np.fromiter((slot[row] for row in named), np.int64, wanted)
        chosen = np.concatenate([above, tied])
        chosen.sort()
        kept_rows, kept_counts = (rows[chosen], counts[chosen])
        n = len(chosen)
        rows[:n], counts[:n] = (kept_rows, kept_counts)
        self._slot = dict(zip(kept_rows.tolist(), range(n), strict=True))

    def as_dict(self) -> dict[int, int]:
        rows, counts = self.view()
        return dict(zip(rows.tolist(), counts.tolist(), strict=True))

    def __len__(self) -> int:
        return len(self._slot)

    def _grow(self) -> None:
        size = len(self._rows)
        self._rows = self._rows + _zeros(size)
        self._counts = self._counts + _zeros(size)

    def __getstate__(self) -> tuple[IntArray, IntArray]:
        rows, counts = self.view()
        return (rows.copy(), counts.copy())

    def __setstate__(self, state: tuple[IntArray, IntArray]) -> None:
        rows, counts = state
        self._rows = array("q", rows.astype(np.int64).tobytes())
        self._counts = array("q", counts.astype(np.int64).tobytes())
        if len(self._rows) == 0:
            self._rows, self._counts = (_zeros(_INITIAL), _zeros(_INITIAL))
        self._slot = dict(zip(rows.tolist(), range(len(rows)), strict=True))


def _zeros(n: int) -> array[int]:
    return array("q", bytes(8 * n))


class CoOccurrence:
    def __init__(
        self,
        max_neighbors: int = 100,
        window: int = 10,
        score_window: int | None = None,
        recency: float | None = None,
        alpha: float = 0.5,
    ) -> None:
        if max_neighbors < 1 or window < 1 or (score_window is not None and score_window < 1):
            raise ValueError("max_neighbors, window and score_window must be >= 1")
        if recency is not None and (not 0.0 < recency <= 1.0):
            raise ValueError("recency must be in (0, 1]")
        self.max_neighbors = max_neighbors
        self.window = window
        self.score_window = window if score_window is None else score_window
        self.recency = recency
        self.alpha = alpha
        self._row: dict[str, int] = {}
        self._ids: list[str] = []
        self._neighbours: list[Neighbours] = []
        self._counts: IntArray = np.zeros(64, np.int64)

    def add(self, previous: Sequence[str], item: str, weight: int = 1) -> None:
        row = self._intern(item)
        self._counts[row] += weight
        known, intern, neighbours = (self._row, self._intern, self._neighbours)
        others = [
            known[other] if other in known else intern(other)
            for other in _distinct(previous[-self.window :], item)
        ]
        mine = neighbours[row]
        mine.add_many(others, weight)
        limit = 2 * self.max_neighbors
        for other_row in others:
            theirs = neighbours[other_row]
            theirs.add(row, weight)
            if len(theirs) > limit:
                theirs.prune(self.max_neighbors, self._ids.__getitem__)
        if len(mine) > limit:
            mine.prune(self.max_neighbors, self._ids.__getitem__)

    def _intern(self, item: str) -> int:
        row = self._row.get(item)
        if row is None:
            row = self._row[item] = len(self._ids)
            self._ids.append(item)
            self._neighbours.append(Neighbours())
            if row == len(self._counts):
                self._counts = np.concatenate([self._counts, np.zeros(row, np.int64)])
        return row

    def unlearn_history(self, history: Sequence[str]) -> None:
        recent = list(history)
        for index, item in enumerate(recent):
            row = self._row.get(item)
            if row is None:
                continue
            self._counts[row] = max(int(self._counts[row]) - 1, 0)
            for other in _distinct(recent[max(0, index - self.window) : index], item):
                other_row = self._row.get(other)
                if other_row is not None:
                    self._neighbours[row].subtract(other_row, 1)
                    self._neighbours[other_row].subtract(row, 1)
            if self._counts[row] == 0:
                for other_row in list(self._neighbours[row].as_dict()):
                    self._neighbours[other_row].subtract(row, 1 << 62)
                self._neighbours[row] = Neighbours()

    def count(self, item: str) -> int:
        row = self._row.get(item)
        return 0 if row is None else int(self._counts[row])

    def cooc(self, a: str, b: str) -> int:
        row_a, row_b = (self._row.get(a), self._row.get(b))
        if row_a is None or row_b is None:
            return 0
        return self._neighbours[row_a].count(row_b)

    def neighbors(self, item: str) -> dict[str, int]:
        row = self._row.get(item)
        if row is None:
            return {}
        return {self._ids[r]: c for r, c in self._neighbours[row].as_dict().items()}

    def recommend(
        self, history: Sequence[str], k: int, exclude: Collection[str] = ()
    ) -> list[tuple[str, float]]:
        if k <= 0:
            return []
        scored = self._scores(history)
        if scored is None:
            return []
        rows, scores = scored
        return top_candidates(rows, scores, k, exclude, self._ids)

    def score(self, history: Sequence[str], items: Sequence[str]) -> list[float]:
        scored = self._scores(history)
        if scored is None:
            return [0.0] * len(items)
        found = dict(zip(scored[0].tolist(), scored[1].tolist(), strict=True))
        return [found.get(self._row.get(item, -1), 0.0) for item in items]

    def _scores(self, history: Sequence[str]) -> tuple[IntArray, FloatArray] | None:
        parts_rows: list[IntArray] = []
        parts_counts: list[IntArray] = []
        factors: list[float] = []
        h_power = self.alpha - 1.0
        for h, weight in self._weights(history).items():
            row = self._row.get(h)
            if row is None:
                continue
            count = int(self._counts[row])
            if not count or not self._neighbours[row]:
                continue
            rows, counts = self._neighbours[row].view()
            parts_rows.append(rows)
            parts_counts.append(counts)
            factors.append(weight * float(count) ** h_power)
        if not parts_rows:
            return None
        rows = np.concatenate(parts_rows)
        sizes = np.fromiter(map(len, parts_rows), np.int64, len(parts_rows))
        scores = np.concatenate(parts_counts) * np.repeat(np.array(factors), sizes)
        if self.alpha != 0.0:  # P(j | h) needs no per-candidate normaliser
            counted = self._counts[rows]
            if not counted.all():  # an item only ever seen in a history: no count to divide by
                known = counted > 0
                rows, scores, counted = rows[known], scores[known], counted[known]
                if not len(rows):
                    return None
            scores *= counted.astype(np.float64) ** -self.alpha
        n_items = len(self._ids)
        if n_items <= DENSE_FACTOR * len(rows):
            dense = np.bincount(rows, scores, minlength=n_items).astype(np.float64, copy=False)
            candidates: IntArray = (dense != 0).nonzero()[0]
            return (candidates, dense[candidates])
        candidates, where = np.unique(rows, return_inverse=True)
        summed = np.bincount(where, scores).astype(np.float64, copy=False)
        return (candidates.astype(np.int64), summed)

    def explain(self, history: Sequence[str], items: Sequence[str]) -> list[str | None]:
        h_power = self.alpha - 1.0
        sources = []
        for h, weight in self._weights(history).items():
            row = self._row.get(h)
            if row is not None and self._counts[row]:
                base = weight * float(self._counts[row]) ** h_power
                sources.append((h, self._neighbours[row], base))
        out: list[str | None] = []
        for item in items:
            target = self._row.get(item)
            best: tuple[float, str] | None = None
            if target is not None:
                for h, neighbours, base in sources:
                    count = neighbours.count(target)
                    if count:
                        gain = base * count
                        if best is None or gain > best[0] or (gain == best[0] and h < best[1]):
                            best = (gain, h)
            out.append(None if best is None else best[1])
        return out

    def _weights(self, history: Sequence[str]) -> dict[str, float]:
        weights: dict[str, float] = {}
        recent = history[-self.score_window :]
        base = self.recency
        for age, h in enumerate(reversed(recent)):
            if h not in weights:
                weights[h] = 1.0 / (1.0 + age) if base is None else base**age
        return weights

    def __getstate__(self) -> dict[str, Any]:
        return self.to_snapshot()

    def __setstate__(self, state: Mapping[str, Any]) -> None:
        self.__dict__.update(CoOccurrence.from_snapshot(state).__dict__)

    def __len__(self) -> int:
        return int(np.count_nonzero(self._counts[: len(self._ids)]))

    def to_snapshot(self) -> dict[str, Any]:
        n = len(self._ids)
        views = [neighbours.view() for neighbours in self._neighbours]
        fits = n <= INT32_MAX and 2 * int(self._counts[:n].max(initial=0)) <= INT32_MAX
        dtype = np.int32 if fits else np.int64
        settings = ("max_neighbors", "window", "score_window", "recency", "alpha")
        return {name: getattr(self, name) for name in settings} | {
            "ids": list(self._ids),
            "counts": self._counts[:n].copy(),
            "sizes": np.fromiter(map(len, self._neighbours), np.int64, n),
            "rows": _joined([rows for rows, _ in views], dtype),
            "pairs": _joined([counts for _, counts in views], dtype),
        }

    @classmethod
    def from_snapshot(cls, data: Mapping[str, Any]) -> CoOccurrence:
        made = cls(data["max_neighbors"], data["window"], data["score_window"], data["recency"])
        made.alpha = data["alpha"]
        made._ids = list(data["ids"])
        made._row = {item: row for row, item in enumerate(made._ids)}
        made._counts = np.zeros(max(64, len(made._ids)), np.int64)
        made._counts[: len(made._ids)] = data["counts"]
        rows, pairs = (data["rows"], data["pairs"])
        bounds = np.concatenate([[0], np.cumsum(data["sizes"])]).tolist()
        made._neighbours = [
            Neighbours.of(rows[start:end], pairs[start:end])
            for start, end in itertools.pairwise(bounds)
        ]
        return made


def _joined(parts: list[IntArray], dtype: type[np.signedinteger[Any]]) -> IntArray:
    if not parts:
        return np.empty(0, dtype)
    return np.concatenate(parts, dtype=dtype, casting="unsafe")


def _distinct(recent: Sequence[str], item: str) -> Sequence[str]:
    if item not in recent and len(set(recent)) == len(recent):
        return recent
    seen = {item}
    out = []
    for other in recent:
        if other not in seen:
            seen.add(other)
            out.append(other)
    return out
