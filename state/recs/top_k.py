"""The `k` best items of scores over item rows, ties by id: over the whole catalogue (FISM's
and ISGD's lists: a full sort per list would cost O(n log n); this is O(n) plus a sort of the
few best), and over a few hundred candidate rows (co-occurrence's lists)."""

from __future__ import annotations

import math
from collections.abc import Collection

import numpy as np
import numpy.typing as npt

__all__ = ["rank_in_top_k", "top_candidates", "top_k"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def top_k(
    scores: FloatArray,
    ids: list[str],
    item_row: dict[str, int],
    k: int,
    exclude: Collection[str],
) -> list[tuple[str, float]]:
    """The `k` best (id, score) not in `exclude`, ties by id. `argpartition` finds the k-th
    best score in O(n); every row scoring at least that much is sorted by (-score, id).
    `scores` is overwritten (-inf) at the excluded rows."""
    n = len(ids)
    excluded = list({row for row in map(item_row.get, exclude) if row is not None})
    k = min(k, n - len(excluded))
    if k <= 0:
        return []
    if excluded:
        scores[excluded] = -np.inf
    if k < n:
        cutoff = scores[np.argpartition(scores, n - k)[n - k :]].min()
        candidates = np.flatnonzero(scores >= cutoff)
    else:
        candidates = np.flatnonzero(scores > -np.inf)
    negated = (-scores[candidates]).tolist()
    ranked = sorted(zip(negated, [ids[r] for r in candidates], strict=True))
    return [(item, -neg) for neg, item in ranked[:k]]


def rank_in_top_k(
    scores: FloatArray,
    ids: list[str],
    item_row: dict[str, int],
    k: int,
    exclude: Collection[str],
    item: str,
) -> int | None:
    """Where `item` stands in what `top_k` would return for the same arguments: its rank
    (1..k), 0 when it is not among them, None when that list would hold fewer than `k`
    (then what fills it matters, so the caller asks `top_k`). The hybrid's probes need only
    the rank of the next item, and counting the better rows costs one comparison over the
    scores instead of a partition and a sort. `scores` is left as it was.

    >>> ids = ["a", "b", "c", "d"]
    >>> rows = {item: row for row, item in enumerate(ids)}
    >>> scores = np.array([0.5, 0.9, 0.5, 0.1])
    >>> [rank_in_top_k(scores, ids, rows, 3, ("b",), item) for item in ids]
    [1, 0, 2, 3]
    >>> rank_in_top_k(scores, ids, rows, 2, (), "d")  # 4th of 4, outside the top 2
    0
    >>> print(rank_in_top_k(scores, ids, rows, 4, ("a",), "d"))  # 3 left: a short list
    None
    """
    excluded = {row for row in map(item_row.get, exclude) if row is not None}
    if k > len(ids) - len(excluded):
        return None
    row = item_row.get(item)
    if row is None or row in excluded:
        return 0
    score = scores[row]
    better = int(np.count_nonzero(scores > score)) - sum(1 for r in excluded if scores[r] > score)
    tied = np.flatnonzero(scores == score).tolist()
    before = sum(1 for r in tied if ids[r] < item and r not in excluded)
    rank = better + before + 1
    return rank if rank <= k else 0


def top_candidates(
    rows: IntArray, scores: FloatArray, k: int, exclude: Collection[str], ids: list[str]
) -> list[tuple[str, float]]:
    """The `k` best (id, score) of candidate `rows` not in `exclude`, ties to the smaller id
    (co-occurrence's lists: a few hundred candidates, not the catalogue).

    Only the best few candidates are turned back into ids and checked against
    `exclude`; when exclusions eat them (a heavy user's seen items rank high), four
    times as many are taken, until k survive or the candidates run out.
    """
    total = len(scores)
    wanted = min(total, 2 * k + 16)
    while True:
        best = np.argpartition(-scores, wanted - 1)[:wanted] if wanted < total else None
        top_rows = rows if best is None else rows[best]
        top_scores = scores if best is None else scores[best]
        kept, lowest = _walk(top_rows, top_scores, k, exclude, ids)
        if len(kept) >= k or wanted == total:
            break
        wanted = min(total, 4 * wanted)
    kept.sort()
    kept = kept[:k]
    if kept and wanted < total and -kept[-1][0] <= lowest:
        kept = _with_ties(rows, scores, kept, k, exclude, ids)
    return [(item, -neg) for neg, item in kept]


def _walk(
    rows: IntArray, scores: FloatArray, k: int, exclude: Collection[str], ids: list[str]
) -> tuple[list[tuple[float, str]], float]:
    """(-score, id) of the best candidates not in `exclude`, best first, until `k` are
    kept and the next score is lower (so ties at the k-th place are all there); and the
    lowest score among `rows`. Walking in score order turns only those into ids, not
    every candidate taken."""
    order = np.argsort(-scores, kind="stable")
    ranked = scores[order].tolist()
    kept: list[tuple[float, str]] = []
    cut = -math.inf
    for row, score in zip(rows[order].tolist(), ranked, strict=True):
        if score < cut:
            break
        item = ids[row]
        if item not in exclude:
            kept.append((-score, item))
            if len(kept) == k:
                cut = score
    return kept, ranked[-1]


def _with_ties(
    rows: IntArray,
    scores: FloatArray,
    kept: list[tuple[float, str]],
    k: int,
    exclude: Collection[str],
    ids: list[str],
) -> list[tuple[float, str]]:
    """Redo the cut when the last place is tied with candidates not looked at."""
    cutoff = -kept[-1][0]
    above = [entry for entry in kept if -entry[0] > cutoff]
    tied = [
        (-cutoff, ids[row]) for row in rows[scores == cutoff].tolist() if ids[row] not in exclude
    ]
    return (above + sorted(tied))[:k]
