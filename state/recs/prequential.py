"""Prequential (test-then-train) recommendation quality: Recall@K, NDCG@K and MRR on a live stream.

Implements the streaming protocol of Vinagre, Jorge & Gama (2014), "Evaluation of recommender
systems in streaming environments" (RecSys REDD workshop): before the model learns from an
interaction (user u, item i), the top-K list it would have shown u is checked for i. With one
relevant item per event, the 1-based position ``rank`` of i in the list gives

* Recall@K (hit rate): 1 if i is in the top K, else 0;
* NDCG@K: ``1 / log2(rank + 1)`` (the ideal DCG of a single relevant item is 1), else 0;
* reciprocal rank: ``1 / rank``, else 0 (averaged, this is MRR).

The scores are averaged over a sliding window of the last ``window`` events, so a live system
sees its *recent* quality (the paper's point: a cumulative mean stops moving after a while and
hides drift), and also over every event since start. Catalogue coverage counts the distinct
items that ever appeared in a top-K list. `difference_ci` compares two arms of an A/B test.

>>> p = Prequential(window=2, k=3)
>>> p.update("a", ["a", "b", "c"]).rank
1
>>> round(p.update("b", ["a", "b", "c"]).ndcg, 5)  # rank 2 -> 1/log2(3)
0.63093
>>> p.update("z", ["a", "b", "c"]).rank is None  # a miss; the first event leaves the window
True
>>> p.window_means()
{'recall': 0.5, 'ndcg': 0.31546487678572877, 'mrr': 0.25, 'n': 2}
>>> round(p.totals()["mrr"], 5)
0.5
>>> p.coverage(catalogue_size=6)
0.5
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypedDict

import numpy as np

__all__ = ["Hit", "Means", "Prequential", "difference_ci", "score_one"]


@dataclass(frozen=True, slots=True)
class Hit:
    """The scores of one event. `rank` is 1-based, or None when the item was not in the top k."""

    recall: float
    ndcg: float
    rr: float
    rank: int | None


class Means(TypedDict):
    """Mean scores over some events; `n` is how many (all means are 0.0 when `n` is 0)."""

    recall: float
    ndcg: float
    mrr: float
    n: int


def _ndcg_gain(rank: int) -> float:
    """DCG of a single relevant item at 1-based `rank`; the ideal DCG is 1, so this is NDCG."""
    return 1.0 / math.log2(rank + 1)


def _rr_gain(rank: int) -> float:
    """Reciprocal rank at 1-based `rank`."""
    return 1.0 / rank


def _check_k(k: int) -> None:
    """A top-0 list can never hit, so every metric would be a constant 0: reject it."""
    if k < 1:
        raise ValueError("k must be >= 1")


def _rank_of(item: str, recommended: Sequence[str], k: int) -> int | None:
    """1-based position of the first `item` among the first `k` recommended, else None."""
    for position, candidate in enumerate(recommended[:k], start=1):
        if candidate == item:
            return position
    return None


def score_one(item: str, recommended: Sequence[str], k: int) -> Hit:
    """Score one event: where does the item the user actually chose sit in the top `k`?

    Only the first `k` entries of `recommended` count, so a list longer than the page shown to
    the user cannot earn credit for items the user never saw. If `item` occurs twice, the first
    (best) position counts.
    """
    _check_k(k)
    rank = _rank_of(item, recommended, k)
    if rank is None:
        return Hit(recall=0.0, ndcg=0.0, rr=0.0, rank=None)
    return Hit(recall=1.0, ndcg=_ndcg_gain(rank), rr=_rr_gain(rank), rank=rank)


class Prequential:
    """Sliding-window and since-start means of Recall@K, NDCG@K and MRR, plus coverage.

    Why rank histograms instead of running float sums: each event's three scores are functions of
    its rank alone, and the rank is an integer in 1..k (0 encodes a miss). So instead of adding
    and subtracting floats (which drifts: after millions of add/remove pairs the window sum no
    longer equals the sum of the window, and the error depends on the event order), we keep an
    integer count of events per rank, for the window and for all time. `update` is O(1): one
    deque append, at most one eviction, two integer increments and one decrement. The means are
    recomputed from the counts in O(k) (k is a page size, ~10), summing in a fixed rank order, so
    they are exact up to one rounding per rank, never drift, and are identical for identical
    windows whatever came before — which keeps replays and restored snapshots byte-identical.

    The state is plain ints, a deque and a set, so instances pickle (Bytewax snapshots).

    Parameters
    ----------
    window
        Number of most recent events the window means cover.
    k
        List length scored (the "@K").
    """

    def __init__(self, window: int = 10_000, k: int = 10) -> None:
        if window < 1:
            raise ValueError("window must be >= 1")
        _check_k(k)
        self.window = window
        self.k = k
        #: Rank of each event in the window, oldest first; 0 encodes a miss.
        self._ranks: deque[int] = deque(maxlen=window)
        #: Events per rank (index 0 = misses), inside the window and since start.
        self._window_counts = [0] * (k + 1)
        self._total_counts = [0] * (k + 1)
        #: Distinct items ever shown in a top-k list, for catalogue coverage.
        self._recommended: set[str] = set()

    def update(self, item: str, recommended: Sequence[str]) -> Hit:
        """Score one event (call it *before* the model learns from it) and add it to the means."""
        hit = score_one(item, recommended, self.k)
        self.add_rank(hit.rank or 0)
        self._recommended.update(recommended[: self.k])
        return hit

    def add_rank(self, rank: int) -> None:
        """Add one event scored elsewhere (`rank` 1..k, 0 for a miss) to the means; it does
        not count towards coverage (the list it was scored against is not here)."""
        if len(self._ranks) == self.window:
            self._window_counts[self._ranks[0]] -= 1  # the append below evicts it
        self._ranks.append(rank)
        self._window_counts[rank] += 1
        self._total_counts[rank] += 1

    def window_means(self) -> Means:
        """Means over the last `window` events (fewer until the window fills)."""
        return self._means(self._window_counts)

    def totals(self) -> Means:
        """Means over every event since start."""
        return self._means(self._total_counts)

    def coverage(self, catalogue_size: int) -> float:
        """Share of the catalogue that has appeared in at least one top-k list.

        The caller knows the catalogue (it may grow); a count above it means the caller passed a
        stale size, so that raises rather than report a coverage above 1.
        """
        if catalogue_size < 1:
            raise ValueError("catalogue_size must be >= 1")
        distinct = len(self._recommended)
        if distinct > catalogue_size:
            raise ValueError(
                f"{distinct} distinct items recommended > catalogue of {catalogue_size}"
            )
        return distinct / catalogue_size

    @property
    def distinct_recommended(self) -> int:
        """Number of distinct items ever shown in a top-k list."""
        return len(self._recommended)

    def _means(self, counts: list[int]) -> Means:
        """Means from a rank histogram; summed in rank order so the result is deterministic."""
        n = sum(counts)
        if n == 0:
            return Means(recall=0.0, ndcg=0.0, mrr=0.0, n=0)
        hits = n - counts[0]
        ndcg = math.fsum(c * _ndcg_gain(r) for r, c in enumerate(counts) if r and c)
        rr = math.fsum(c * _rr_gain(r) for r, c in enumerate(counts) if r and c)
        return Means(recall=hits / n, ndcg=ndcg / n, mrr=rr / n, n=n)

    def to_snapshot(self) -> dict[str, Any]:
        """Settings, the window's ranks (one small-int array), the rank histograms, and the
        items ever recommended (sorted: a set's order is not data)."""
        return {
            "window": self.window,
            "k": self.k,
            "ranks": np.fromiter(self._ranks, np.int32, len(self._ranks)),
            "window_counts": list(self._window_counts),
            "total_counts": list(self._total_counts),
            "recommended": sorted(self._recommended),
        }

    @classmethod
    def from_snapshot(cls, data: Mapping[str, Any]) -> Prequential:
        made = cls(data["window"], data["k"])
        made._ranks.extend(data["ranks"].tolist())
        made._window_counts = list(data["window_counts"])
        made._total_counts = list(data["total_counts"])
        made._recommended = set(data["recommended"])
        return made


def difference_ci(
    a: Sequence[float], b: Sequence[float], z: float = 1.96
) -> tuple[float, float, float]:
    """Difference of means ``b - a`` with a normal-approximation confidence interval.

    For an A/B test, `a` and `b` are the per-event scores (e.g. `Hit.ndcg`) of the control and
    the treatment arm. The arms are independent samples with possibly different variances, so the
    standard error is Welch's ``sqrt(var_a / n_a + var_b / n_b)`` with sample variances
    (``n - 1`` denominators), and the interval is ``diff ± z * se`` (z = 1.96 gives ~95%).
    The normal approximation is fine for the thousands of events a live test collects, even for
    0/1 recall scores; for a handful of events it is too narrow (a t quantile would be wider).
    Per-event scores from one user are correlated, so treat the interval as optimistic when a
    few users dominate an arm.

    Returns ``(difference, lower, upper)``. Each arm needs at least two scores for a variance.
    """
    if len(a) < 2 or len(b) < 2:
        raise ValueError("each sample needs at least 2 scores")
    diff = statistics.fmean(b) - statistics.fmean(a)
    se = math.sqrt(statistics.variance(a) / len(a) + statistics.variance(b) / len(b))
    return diff, diff - z * se, diff + z * se
