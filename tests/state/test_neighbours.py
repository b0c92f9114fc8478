from __future__ import annotations

import pickle

from state.neighbours import Neighbours


def test_add_subtract_and_removal_keep_the_arrays_dense() -> None:
    n = Neighbours()
    for row, weight in [(5, 1), (6, 2), (7, 3), (5, 2)]:
        n.add(row, weight)
    assert n.as_dict() == {5: 3, 6: 2, 7: 3}
    n.subtract(5, 3)  # gone: the last slot (7) moves into its place
    assert n.as_dict() == {7: 3, 6: 2}
    assert n.count(5) == 0 and len(n) == 2
    n.subtract(6, 1)
    n.subtract(99, 1)  # unknown: nothing happens
    assert n.as_dict() == {7: 3, 6: 1}
    rows, counts = n.view()
    assert rows.tolist() == [7, 6] and counts.tolist() == [3, 1]


def test_growth_past_the_initial_capacity() -> None:
    n = Neighbours()
    for row in range(100):
        n.add(row, row + 1)
    assert len(n) == 100 and n.count(99) == 100 and n.count(0) == 1


def test_prune_keeps_the_largest_counts_ties_to_the_smaller_name() -> None:
    n = Neighbours()
    names = {1: "d", 2: "a", 3: "c", 4: "b", 5: "e"}
    for row, weight in [(1, 5), (2, 1), (3, 1), (4, 1), (5, 4)]:
        n.add(row, weight)
    n.prune(3, names.__getitem__)
    # 1 (5) and 5 (4) stay; one of the count-1 ties: the smallest name, "a" (row 2)
    assert n.as_dict() == {1: 5, 2: 1, 5: 4}
    n.add(4, 7)  # still works after pruning
    assert n.count(4) == 7


def test_pickle_keeps_only_the_filled_part_and_stays_usable() -> None:
    n = Neighbours()
    for row in range(20):
        n.add(row, 1)
    clone = pickle.loads(pickle.dumps(n))
    assert clone.as_dict() == n.as_dict()
    clone.add(50, 2)
    clone.add(3, 1)
    assert clone.count(50) == 2 and clone.count(3) == 2 and n.count(50) == 0
    empty = pickle.loads(pickle.dumps(Neighbours()))
    empty.add(1, 1)
    assert empty.as_dict() == {1: 1}
