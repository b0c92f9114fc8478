"""The `k` best items of a score vector over item rows (FISM's lists): a full sort of the
catalogue per list would cost O(n log n); this is O(n) plus a sort of the few best."""

from __future__ import annotations

from collections.abc import Collection

import numpy as np
import numpy.typing as npt

__all__ = ["top_k"]

FloatArray = npt.NDArray[np.float64]


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
