"""Incremental item-to-item co-occurrence counts: "people who touched these also touched that".

Each new interaction pairs the item with the distinct items the user touched just before
it, so the model learns from the stream with no batch job and no user-item matrix. Scores are
normalised like a cosine, cooc(h, j) / sqrt(count(h) * count(j)), so a best-seller that sits
next to everything does not drown out the items that specifically go together.

Recency weighting: the history item `age` steps before the newest gets weight
`1 / (1 + age)` (the newest 1, the one before 1/2, ...) by default, or `recency ** age` when
`recency` is given; and only the last `score_window` items are scored. What pairs are learned
from (`window`) and what a recommendation reads (`score_window`) are separate: many pairs make
the counts robust, while the next item follows the user's latest few items most closely.
The recommender built on these counts is `tailor.state.recs.cooccurrence.CoocRecommender`.

>>> model = CoOccurrence()
>>> sessions = [["a", "b"], ["a", "c"], ["a", "b"]]
>>> for items in sessions:
...     for i, item in enumerate(items):
...         model.add(items[:i], item)
>>> [(item, round(score, 4)) for item, score in model.recommend(["a"], k=2, exclude=["a"])]
[('b', 0.8165), ('c', 0.5774)]
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from tailor.state import increments
from tailor.state.recs import neighbour_changes
from tailor.state.recs.neighbour_changes import packed_type
from tailor.state.recs.neighbour_pool import NeighbourPool
from tailor.state.recs.top_k import top_candidates

__all__ = ["CoOccurrence"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: Scores are summed into a catalogue-sized array while that is at most this many times
#: the candidates (cheap `bincount`); beyond, by sorting the candidates (`np.unique`), so a
#: million-item catalogue does not cost a million-slot array per recommendation.
DENSE_FACTOR = 16
SETTINGS = ("max_neighbors", "window", "score_window", "recency", "alpha")


class CoOccurrence:
    """Item-to-item co-occurrence counts over recent user histories.

    Parameters
    ----------
    max_neighbors
        Neighbours kept per item. An item's neighbours are pruned back to this many (by
        count, then id: deterministic) once they grow past twice the cap, so pruning cost is
        amortised and memory stays bounded by `2 * max_neighbors` per item.
    window
        How many of the most recent history items are paired with a new item while learning
        (and scored while recommending, unless `score_window` says otherwise).
    score_window
        How many of the most recent history items a recommendation is scored from.
    recency
        Weight base per step of age while scoring (`recency ** age`); None: `1 / (1 + age)`.
    alpha
        Popularity damping of a candidate j: scores are cooc(h, j) / (count(h)^(1-alpha) *
        count(j)^alpha). 0.5 is the cosine; 0 the conditional probability P(j | h), which
        favours popular candidates (they co-occur with everything).
    """

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
        if recency is not None and not 0.0 < recency <= 1.0:
            raise ValueError("recency must be in (0, 1]")
        self.max_neighbors = max_neighbors
        self.window = window
        self.score_window = window if score_window is None else score_window
        self.recency = recency
        self.alpha = alpha

        self._row: dict[str, int] = {}  # item id → row, in order of first sight
        self._ids: list[str] = []  # row → item id
        # row → its neighbours: a row holds at most the cap's double, plus one event's pairs
        self._pool = NeighbourPool(2 * max_neighbors + window)
        self._pool.reserve_rows(64)
        self._counts: IntArray = self._pool.totals  # row → weighted interactions
        self._ids_at: list[int] = []  # generation → how many ids there were when it ended

    def add(self, previous: Sequence[str], item: str, weight: int = 1) -> None:
        """Count `item` `weight` times and pair it, both ways, with each distinct recent
        previous item (a purchase weighted 3 counts as three views)."""
        row = self._row.get(item)
        if row is None:
            row = self._intern(item)
        recent = self._rows(previous[-self.window :])
        self._learn(np.array([row, weight, 0, len(recent), *recent], np.int64), 1)

    def add_many(
        self, previous: Sequence[Sequence[str]], items: Sequence[str], weights: Sequence[int]
    ) -> None:
        """`add(previous[i], items[i], weights[i])` for each i in order, in one compiled
        call (a replica learning another worker's batch): the same counts, slots and prunings."""
        get, intern, window = self._row.get, self._intern, self.window
        rows: list[int] = []
        bounds = [0]
        paired: list[int] = []
        for history, item, _ in zip(previous, items, weights, strict=True):
            row = get(item)
            rows.append(intern(item) if row is None else row)
            paired += self._rows(history[-window:])
            bounds.append(len(paired))
        self._learn(np.array([*rows, *weights, *bounds, *paired], np.int64), len(rows))

    def _rows(self, items: Sequence[str]) -> list[int]:
        """The items' rows, the unseen ones created in order (after the event's own item's,
        as rows were always made)."""
        rows = list(map(self._row.get, items))
        if None in rows:
            intern = self._intern
            return [intern(item) for item in items]
        return cast(list[int], rows)

    def _learn(self, events: IntArray, n_events: int) -> None:
        """Events of interned rows (`neighbour_pool.flat_events`), each paired with its
        distinct recent items but itself (the compiled step makes them distinct)."""
        keep = self.max_neighbors
        self._pool.learn(events, n_events, 2 * keep, keep, self._ids.__getitem__)

    def _intern(self, item: str) -> int:
        """The item's row, created on first sight."""
        row = self._row.get(item)
        if row is None:
            row = self._row[item] = len(self._ids)
            self._ids.append(item)
            if row == len(self._counts):
                self._pool.reserve_rows(2 * row)
                self._counts = self._pool.totals
        return row

    def unlearn_history(self, history: Sequence[str]) -> None:
        """Take back what a forgotten user's `history` taught, as far as that history reaches.

        Replays the learning in reverse, one interaction per history entry: each item's count,
        and its pairs with the items within `window` before it. Pairs formed with items the
        history no longer holds (older than `history_len`, or pruned since) cannot be found and
        stay, as do the extra counts of weighted events; they are anonymous counts among many
        users' counts. Counts never go below zero.
        """
        recent = list(history)
        pool = self._pool
        for index, item in enumerate(recent):
            row = self._row.get(item)
            if row is None:
                continue
            pool.set_total(row, max(int(self._counts[row]) - 1, 0))
            for other in _distinct(recent[max(0, index - self.window) : index], item):
                other_row = self._row.get(other)
                if other_row is not None:
                    pool.subtract(row, other_row, 1)
                    pool.subtract(other_row, row, 1)
            if self._counts[row] == 0:  # forgotten altogether: no pair may point at it
                for other_row in pool.view(row)[0].tolist():
                    pool.subtract(other_row, row, 1 << 62)
                pool.clear(row)

    def count(self, item: str) -> int:
        """How many (weighted) times `item` was learned (0 when never)."""
        row = self._row.get(item)
        return 0 if row is None else int(self._counts[row])

    def cooc(self, a: str, b: str) -> int:
        """How many (weighted) times `a` and `b` were paired (0 when never, or pruned)."""
        row_a, row_b = self._row.get(a), self._row.get(b)
        if row_a is None or row_b is None:
            return 0
        return self._pool.count(row_a, row_b)

    def neighbors(self, item: str) -> dict[str, int]:
        """`item`'s neighbour counts by id."""
        row = self._row.get(item)
        if row is None:
            return {}
        rows, counts = self._pool.view(row)
        return {self._ids[r]: c for r, c in zip(rows.tolist(), counts.tolist(), strict=True)}

    def recommend(
        self, history: Sequence[str], k: int, exclude: Collection[str] = ()
    ) -> list[tuple[str, float]]:
        """Top `k` (item, score) for a user whose recent items are `history` (oldest first).

        A read only: unknown items are skipped, nothing is created. Ties go to the smaller id.
        """
        if k <= 0:
            return []
        scored = self._scores(history)
        if scored is None:
            return []
        rows, scores = scored
        return top_candidates(rows, scores, k, exclude, self._ids)

    def score(self, history: Sequence[str], items: Sequence[str]) -> list[float]:
        """Each item's score from `history` (0.0 when it is no recent item's neighbour)."""
        scored = self._scores(history)
        if scored is None:
            return [0.0] * len(items)
        found = dict(zip(scored[0].tolist(), scored[1].tolist(), strict=True))
        return [found.get(self._row.get(item, -1), 0.0) for item in items]

    def _scores(self, history: Sequence[str]) -> tuple[IntArray, FloatArray] | None:
        """(candidate rows, scores): every recent item's neighbours, weighted and summed."""
        sources: list[int] = []
        factors: list[float] = []  # each recent item's weight times its count ** (alpha - 1)
        h_power = self.alpha - 1.0
        for h, weight in self._weights(history).items():
            row = self._row.get(h)
            if row is None:
                continue
            count = int(self._counts[row])
            if not count or not self._pool.size[row]:
                continue
            sources.append(row)
            factors.append(weight * float(count) ** h_power)
        if not sources:
            return None
        rows, counts, sizes = self._pool.regions(sources)
        scores = counts * np.repeat(np.array(factors), sizes)
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
            candidates: IntArray = (dense != 0).nonzero()[0]  # 4x faster than on floats
            return candidates, dense[candidates]
        candidates, where = np.unique(rows, return_inverse=True)
        summed = np.bincount(where, scores).astype(np.float64, copy=False)
        return candidates.astype(np.int64), summed

    def explain(self, history: Sequence[str], items: Sequence[str]) -> list[str | None]:
        """For each item, the recent item that contributed most to its score (None if none).

        Asked only for the k items finally recommended, so reasons cost k × window lookups
        instead of bookkeeping for every candidate while scoring; the recent items' weights
        and neighbours are looked up once for the whole list.
        """
        h_power = self.alpha - 1.0
        sources: list[tuple[str, float]] = []
        source_rows: list[int] = []
        for h, weight in self._weights(history).items():
            row = self._row.get(h)
            if row is not None and self._counts[row]:
                sources.append((h, weight * float(self._counts[row]) ** h_power))
                source_rows.append(row)
        targets = [self._row.get(item) for item in items]
        known = [target for target in targets if target is not None]
        # per known item, its pairings with each source (one compiled lookup for the list)
        paired: list[list[int]] = self._pool.lookup(source_rows, known).T.tolist()
        found = iter(paired)
        out: list[str | None] = []
        for target in targets:
            best: tuple[float, str] | None = None
            if target is not None:
                for (h, base), count in zip(sources, next(found), strict=True):
                    if count:
                        gain = base * count
                        if best is None or gain > best[0] or (gain == best[0] and h < best[1]):
                            best = (gain, h)
            out.append(None if best is None else best[1])
        return out

    def _weights(self, history: Sequence[str]) -> dict[str, float]:
        """Weight of each distinct recent item, by the age of its most recent occurrence."""
        weights: dict[str, float] = {}
        recent = history[-self.score_window :]
        base = self.recency
        for age, h in enumerate(reversed(recent)):
            if h not in weights:
                weights[h] = 1.0 / (1.0 + age) if base is None else base**age
        return weights

    def __getstate__(self) -> dict[str, Any]:
        """Pickled as its snapshot: a few packed arrays, not two small arrays per item, which
        pickle one by one (decision 0007)."""
        return self.to_snapshot()

    def __setstate__(self, state: Mapping[str, Any]) -> None:
        self.__dict__.update(CoOccurrence.from_snapshot(state).__dict__)

    def __len__(self) -> int:
        """Items learned (and not forgotten)."""
        return int(np.count_nonzero(self._counts[: len(self._ids)]))

    def to_snapshot(self) -> dict[str, Any]:
        """Settings, ids in row order, counts, and every row's neighbours end to end (a few
        arrays, not two per item), as 32-bit integers when they fit (`packed_type`)."""
        n = len(self._ids)
        sizes, rows, pairs = self._pool.packed(n, packed_type(n, self._counts[:n]))
        return {name: getattr(self, name) for name in SETTINGS} | {
            "ids": list(self._ids),
            "counts": self._counts[:n].copy(),
            "sizes": sizes,
            "rows": rows,
            "pairs": pairs,
        }

    @classmethod
    def from_snapshot(cls, data: Mapping[str, Any]) -> CoOccurrence:
        data = increments.whole(data, cls)
        made = cls(data["max_neighbors"], data["window"], data["score_window"], data["recency"])
        made.alpha = data["alpha"]
        made._ids = list(data["ids"])
        made._row = {item: row for row, item in enumerate(made._ids)}
        made._pool = NeighbourPool.of(
            made._pool.max_size, max(64, len(made._ids)), data["sizes"], data["rows"], data["pairs"]
        )
        made._counts = made._pool.totals
        made._counts[: len(made._ids)] = data["counts"]
        return made

    def mark(self) -> int:
        """The current generation (`tailor.state.increments`); what is written from now on is
        stamped with the next one."""
        self._ids_at.append(len(self._ids))
        mark = self._pool.mark()
        assert mark == len(self._ids_at) - 1, "the pool's generations are the model's"
        return mark

    def changes_since(self, mark: int) -> dict[str, Any]:
        """What `patched` needs to turn the snapshot taken at `mark` into `to_snapshot()`:
        the settings, the ids appended since (rows are never removed), and the rows and
        slots stamped after `mark` (`tailor.state.recs.neighbour_changes`)."""
        n, first = len(self._ids), self._ids_at[mark]
        rows, slots = neighbour_changes.changes(
            self._pool, n, mark, packed_type(n, self._counts[:n])
        )
        return {name: getattr(self, name) for name in SETTINGS} | {
            "first_id": first,
            "ids": self._ids[first:],
            "changed": rows,
            "slots": slots,
        }

    @classmethod
    def patched(cls, whole: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
        """`to_snapshot()` as it was when `changes` were taken, from the base `whole`."""
        if len(whole["ids"]) != changes["first_id"]:
            raise ValueError("the changes were not taken against this base")
        ids = [*whole["ids"], *changes["ids"]]
        packed = neighbour_changes.patch(
            (whole["counts"], whole["sizes"], whole["rows"], whole["pairs"]),
            len(ids),
            changes["changed"],
            changes["slots"],
        )
        counts, sizes, rows, pairs = packed
        return {name: changes[name] for name in SETTINGS} | {
            "ids": ids,
            "counts": counts,
            "sizes": sizes,
            "rows": rows,
            "pairs": pairs,
        }


def _distinct(recent: Sequence[str], item: str) -> Sequence[str]:
    """`recent` without repeats and without `item`, first occurrence kept.

    A user's history is already an ordered set without the new item, so the check is one
    set build and the copy is only made for other callers.
    """
    if item not in recent and len(set(recent)) == len(recent):
        return recent
    seen = {item}
    out = []
    for other in recent:
        if other not in seen:
            seen.add(other)
            out.append(other)
    return out
