"""The NDCG@k gain of an item in a list as serving would complete it, for the hybrid's probes.

A probe asks, for every list the hybrid could serve, how much the next item would have earned
in it; `paired_t` compares two lists' gains over the probes. Serving fills a short list from
the fallback chain, so the gain is measured on the list as filled; building that filled copy
only when the item could be in the filling keeps a probe cheap (an item absent from a full
list earns 0).

>>> filled(["a"], [["a", "b"], ["c"]], 3)
['a', 'b', 'c']
>>> round(filled_gain(["a"], [["b"]], "b", 2), 4)
0.6309
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["MIN_PROBES", "filled", "filled_gain", "gain", "gain_at", "paired_t"]

#: Probes (decayed count) before a paired t-test may decide anything.
MIN_PROBES = 30.0


def gain(ranked: Sequence[str], item: str, k: int) -> float:
    """NDCG@k gain of `item` in `ranked`: 1 / log2(rank + 1) within the first k, else 0."""
    for rank, candidate in enumerate(ranked[:k], 1):
        if candidate == item:
            return gain_at(rank)
    return 0.0


def gain_at(rank: int) -> float:
    """NDCG gain at a 1-based `rank`; 0 stands for absent (a model that ranks, `Ranker`)."""
    return 1.0 / math.log2(rank + 1) if rank else 0.0


def filled(items: list[str], fills: Sequence[list[str]], k: int) -> list[str]:
    """`items` completed to `k` from the lists in `fills`, in order, without repeats: what
    serving's fill would add (each fill list is its model's top k, so enough remain)."""
    out = items[:k]
    taken = set(out)
    for fill in fills:
        for item in fill:
            if len(out) >= k:
                return out
            if item not in taken:
                out.append(item)
                taken.add(item)
    return out


def filled_gain(items: list[str], fills: Sequence[list[str]], item: str, k: int) -> float:
    """`gain` of `item` in `items` as `filled` completes it, building the filled list only
    when the item could be in the filling (absent from a full list, its gain is 0)."""
    if item in items[:k]:
        return gain(items, item, k)
    if len(items) >= k:
        return 0.0
    return gain(filled(items, fills, k), item, k)


def paired_t(sums: tuple[float, float, float]) -> float:
    """The paired t statistic of gain differences from their decayed (count, sum, sum of
    squares); 0 before `MIN_PROBES`, when no comparison may decide anything."""
    n, total, squares = sums
    if n < MIN_PROBES - 1e-6:  # (a decayed count: 30 fresh probes weigh 29.99...)
        return 0.0
    mean = total / n
    variance = max(squares / n - mean * mean, 1e-12)
    return mean / math.sqrt(variance / n)
