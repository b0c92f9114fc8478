"""`rank_in_top_k` says where an item stands in `top_k`'s list without building it."""

from __future__ import annotations

import random

import numpy as np

from tailor.state.recs.top_k import rank_in_top_k, top_k


def test_the_rank_is_the_items_place_in_top_k_with_ties_and_exclusions() -> None:
    rng = random.Random(11)
    checked = {"inside": 0, "outside": 0, "short": 0}
    for _case in range(400):
        n = rng.randrange(1, 40)
        ids = [f"i{rng.randrange(1000):03d}" for _ in range(n)]
        ids = list(dict.fromkeys(ids))  # ids are unique rows
        rows = {item: row for row, item in enumerate(ids)}
        scores = np.array([float(rng.randrange(6)) for _ in ids])  # many ties
        exclude = set(rng.sample([*ids, "unknown"], rng.randrange(min(4, len(ids) + 1))))
        k = rng.randrange(1, 12)
        listed = [item for item, _ in top_k(scores.copy(), ids, rows, k, exclude)]
        for item in [*ids, "unknown"]:
            rank = rank_in_top_k(scores, ids, rows, k, exclude, item)
            if len(listed) < k:
                assert rank is None
                checked["short"] += 1
            elif item in listed:
                assert rank == listed.index(item) + 1
                checked["inside"] += 1
            else:
                assert rank == 0
                checked["outside"] += 1
    assert min(checked.values()) > 100
