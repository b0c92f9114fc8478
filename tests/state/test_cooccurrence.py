from __future__ import annotations

import copy
import csv
import math
import pickle
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from tailor.state.recs.cooc_counts import CoOccurrence
from tailor.state.recs.trending import Trending


def learn_sessions(model: CoOccurrence, sessions: list[list[str]]) -> None:
    for items in sessions:
        for i, item in enumerate(items):
            model.add(items[:i], item)


def test_counts_equal_a_hand_computation() -> None:
    model = CoOccurrence()
    # user 1: a b a c ; user 2: b c
    learn_sessions(model, [["a", "b", "a", "c"], ["b", "c"]])
    # counts: a 2, b 2, c 2
    assert [model.count(i) for i in "abc"] == [2.0, 2.0, 2.0]
    # a|[]: -; b|[a]: ab; a|[a,b]: ab (a itself skipped); c|[a,b,a]: ca, cb (a once); c|[b]: cb
    assert model.cooc("a", "b") == model.cooc("b", "a") == 2.0
    assert model.cooc("a", "c") == model.cooc("c", "a") == 1.0
    assert model.cooc("b", "c") == model.cooc("c", "b") == 2.0
    assert model.cooc("a", "a") == 0.0
    assert model.neighbors("c") == {"a": 1.0, "b": 2.0}


def test_scores_equal_cosine_with_harmonic_recency_weights() -> None:
    model = CoOccurrence()
    learn_sessions(model, [["a", "b", "a", "c"], ["b", "c"], ["d", "e"], ["c", "e"]])
    # counts: a2 b2 c3 d1 e2; cooc: ab2 ac1 bc2 de1 ce1
    recs = dict(model.recommend(["a", "d", "b"], k=10, exclude={"a", "d", "b"}))
    # weights: b (age 0) 1, d (age 1) 1/2, a (age 2) 1/3
    expected_c = 1.0 * 2 / math.sqrt(2 * 3) + (1 / 3) * 1 / math.sqrt(2 * 3)
    expected_e = 0.5 * 1 / math.sqrt(1 * 2)
    assert recs == pytest.approx({"c": expected_c, "e": expected_e})
    assert model.recommend(["a", "d", "b"], k=1, exclude={"a", "d", "b"})[0][0] == "c"


def test_repeated_history_item_counts_once_at_its_most_recent_age() -> None:
    model = CoOccurrence()
    learn_sessions(model, [["a", "x"], ["b", "y"]])
    # a appears at ages 2 and 0 → weight 1; b at age 1 → weight 1/2.
    recs = dict(model.recommend(["a", "b", "a"], k=5, exclude=set()))
    assert recs == pytest.approx({"x": 1.0, "y": 0.5})


def test_ties_break_by_item_id_and_exclusions_apply() -> None:
    model = CoOccurrence()
    learn_sessions(model, [["a", "z"], ["a", "m"], ["a", "b"]])
    assert [i for i, _ in model.recommend(["a"], k=3, exclude={"a"})] == ["b", "m", "z"]
    assert [i for i, _ in model.recommend(["a"], k=2, exclude={"a", "b"})] == ["m", "z"]
    assert model.recommend(["unknown"], k=3, exclude=()) == []
    assert model.recommend(["a"], k=0, exclude=()) == []
    assert len(model) == 4  # reading created nothing


def test_window_bounds_learning_and_scoring() -> None:
    model = CoOccurrence(window=2)
    learn_sessions(model, [["a", "b", "c", "d"]])
    assert model.cooc("d", "a") == 0.0  # a was 3 back: outside the window
    assert model.cooc("d", "b") == 1.0 and model.cooc("d", "c") == 1.0
    assert [i for i, _ in model.recommend(["a", "b", "c"], k=5, exclude={"a", "b", "c"})] == ["d"]
    assert model.recommend(["a", "x", "y"], k=5, exclude=()) == []


def test_pruning_keeps_the_top_neighbours_deterministically() -> None:
    model = CoOccurrence(max_neighbors=2)
    model.add(["n3"], "hub")
    model.add(["n3"], "hub")
    model.add(["n1"], "hub")
    model.add(["n1"], "hub")
    for other in ["n2", "n0", "n4"]:
        model.add([other], "hub")
    # five neighbours > 2 * cap → pruned to the top 2 by count (n1, n3 have 2), dict bounded
    assert model.neighbors("hub") == {"n1": 2.0, "n3": 2.0}
    model.add(["n5"], "hub")
    model.add(["n6"], "hub")
    model.add(["n7"], "hub")
    # 2 + 3 = 5 > 4 → prune again: n1, n3 kept; among count-1 ties nothing survives
    assert model.neighbors("hub") == {"n1": 2.0, "n3": 2.0}
    model2 = CoOccurrence(max_neighbors=2)
    for other in ["e", "d", "c", "b", "a"]:
        model2.add([other], "hub")
    assert model2.neighbors("hub") == {"a": 1.0, "b": 1.0}  # ties → smallest ids


def test_pickle_and_deepcopy_give_identical_recommendations() -> None:
    model = CoOccurrence()
    learn_sessions(model, [["a", "b", "c"], ["b", "c", "d"], ["a", "d"]])
    clone = pickle.loads(pickle.dumps(model))
    twin = copy.deepcopy(model)
    twin.add(["a"], "zzz")
    assert clone.recommend(["a", "b"], 5, {"a"}) == model.recommend(["a", "b"], 5, {"a"})
    assert "zzz" not in dict(model.recommend(["a"], 5, {"a"}))


def movielens_sequences(data_dir: Path, users: int) -> dict[str, list[str]]:
    """Per user, movies rated >= 4 in time order, for the first `users` user ids."""
    rows: dict[str, list[tuple[int, str]]] = defaultdict(list)
    with (data_dir / "movielens-latest-small" / "ratings.csv").open() as f:
        for row in csv.DictReader(f):
            if int(row["userId"]) > users:
                break
            if float(row["rating"]) >= 4.0:
                rows[row["userId"]].append((int(row["timestamp"]), row["movieId"]))
    return {u: [m for _, m in sorted(r)] for u, r in rows.items()}


def test_cooc_beats_popularity_on_movielens_next_item(data_dir: Path) -> None:
    """Leave-last-out hit rate@10: co-occurrence clearly beats plain (undecayed) popularity."""
    seqs = {u: s for u, s in movielens_sequences(data_dir, 300).items() if len(s) >= 5}
    model = CoOccurrence(max_neighbors=200, window=20)
    popular = Trending(halflife_s=1e12)
    for seq in seqs.values():
        train = seq[:-1]
        for i, item in enumerate(train):
            model.add(train[max(0, i - 20) : i], item)
            popular.add(item, 0.0)
    hits_cooc = hits_pop = 0
    for seq in seqs.values():
        history, target = seq[:-1], seq[-1]
        seen = set(history)
        hits_cooc += target in {i for i, _ in model.recommend(history, 10, seen)}
        hits_pop += target in {i for i, _ in popular.top(10, seen)}
    n = len(seqs)
    assert n > 200
    assert hits_cooc > 1.5 * hits_pop  # measured: 23 vs 9 hits of 296


def test_alpha_recency_and_score_window_by_hand() -> None:
    # a: 3 times; b after a twice; c after a once; d alone once, then with b
    model = CoOccurrence(window=10, score_window=1, recency=0.5, alpha=0.0)
    for previous, item in [((), "a"), (("a",), "b"), ((), "a"), (("a",), "b")]:
        model.add(previous, item)
    for previous, item in [((), "a"), (("a",), "c"), ((), "d"), (("d",), "b")]:
        model.add(previous, item)
    # alpha 0: P(j | h) = cooc(h, j) / count(h); only the newest history item is scored
    assert model.recommend(["d", "a"], k=3) == [("b", 2 / 3), ("c", 1 / 3)]
    wider = CoOccurrence(window=10, score_window=2, recency=0.5, alpha=0.0)
    for previous, item in [((), "a"), (("a",), "b"), ((), "a"), (("a",), "c")]:
        wider.add(previous, item)
    wider.add((), "d")
    wider.add(("d",), "c")
    # history [d, a]: a weight 1 (age 0), d weight 0.5 (age 1)
    # b: 1 * 1/2; c: 1 * 1/2 + 0.5 * 1/1 = 1.0
    assert wider.recommend(["d", "a"], k=2) == [("c", 1.0), ("b", 0.5)]
    cosine = CoOccurrence(window=10)  # alpha 0.5: cooc / sqrt(count(h) * count(j))
    for previous, item in [((), "a"), (("a",), "b"), ((), "a")]:
        cosine.add(previous, item)
    assert cosine.recommend(["a"], k=1) == [("b", pytest.approx(1 / 2**0.5))]


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="score_window"):
        CoOccurrence(score_window=0)
    with pytest.raises(ValueError, match="recency"):
        CoOccurrence(recency=1.5)


def test_explain_names_the_recent_item_that_contributed_most() -> None:
    model = CoOccurrence(window=10, alpha=0.0)
    for previous, item in [((), "a"), (("a",), "x"), ((), "b"), (("b",), "x"), (("b", "x"), "y")]:
        model.add(previous, item)
    # history [a, b]: x gets 1/2 * P(x | a) = 0.5 from a (age 1) and 1 * P(x | b) = 1 from b
    assert model.explain(["a", "b"], ["x"]) == ["b"]
    assert model.explain(["b", "a"], ["x"]) == ["a"]  # a newest now: weight 1 beats 1/2
    assert model.explain(["a"], ["y", "x", "nowhere"]) == [None, "a", None]  # nothing led to y


def test_sparse_scoring_path_equals_the_dense_one(monkeypatch: pytest.MonkeyPatch) -> None:
    import tailor.state.recs.cooc_counts as module

    model = CoOccurrence(alpha=0.5)
    learn_sessions(model, [["a", "b", "c", "d"], ["b", "e", "f"], ["a", "f", "g"], ["c", "g"]])
    dense = model.recommend(["a", "b", "f"], 10, {"a"})
    monkeypatch.setattr(module, "DENSE_FACTOR", 0)  # every catalogue counts as large
    assert model.recommend(["a", "b", "f"], 10, {"a"}) == dense
    assert len(dense) == 6  # b..g: history items are not excluded here


def test_ties_beyond_the_first_candidates_still_go_to_the_smaller_id() -> None:
    model = CoOccurrence(max_neighbors=500)
    others = [f"i{n:03d}" for n in range(200)]
    model.add([], "hub")
    for other in reversed(others):  # all tied with count 1, learned in reverse id order
        model.add(["hub"], other)
    excluded = set(others[:150])  # exclusions eat the first candidates looked at
    recs = model.recommend(["hub"], 3, excluded)
    assert [item for item, _ in recs] == ["i150", "i151", "i152"]


def test_weighted_learning_counts_an_event_as_weight_interactions() -> None:
    weighted, repeated = CoOccurrence(), CoOccurrence()
    weighted.add(["a"], "b", weight=3)
    for _ in range(3):
        repeated.add(["a"], "b")
    assert weighted.count("b") == 3 and weighted.cooc("a", "b") == weighted.cooc("b", "a") == 3
    assert weighted.recommend(["a"], 2, {"a"}) == repeated.recommend(["a"], 2, {"a"})


def test_a_packed_snapshot_restores_every_neighbour_and_keeps_learning_alike() -> None:
    model = CoOccurrence(max_neighbors=3)
    sessions = [[f"i{(u * 7 + n * 3) % 23}" for n in range(8)] for u in range(30)]
    learn_sessions(model, sessions)  # prunes too: 3 neighbours kept of up to 6
    clone = pickle.loads(pickle.dumps(model))
    assert len(clone) == len(model) > 0
    for item in (f"i{n}" for n in range(23)):
        assert clone.neighbors(item) == model.neighbors(item)
        assert clone.count(item) == model.count(item)
    for twin in (model, clone):
        learn_sessions(twin, [["i1", "i2", "new"]])
    assert clone.recommend(["i1", "i2"], 5, set()) == model.recommend(["i1", "i2"], 5, set())
    assert pickle.loads(pickle.dumps(CoOccurrence())).recommend(["a"], 3, set()) == []


def test_a_snapshot_packs_32_bit_integers_and_a_64_bit_one_still_loads() -> None:
    model = CoOccurrence()
    learn_sessions(model, [["a", "b", "c"], ["b", "c", "d"], ["a", "d"]])
    packed = model.to_snapshot()
    assert packed["rows"].dtype == packed["pairs"].dtype == np.int32  # half the bytes
    wide = packed | {"rows": packed["rows"].astype(np.int64)}
    wide["pairs"] = packed["pairs"].astype(np.int64)
    for state in (packed, wide):
        clone = CoOccurrence.from_snapshot(state)
        assert all(clone.neighbors(i) == model.neighbors(i) for i in "abcd")
        clone.add(["a"], "b")  # learning works on the restored arrays
        assert clone.cooc("a", "b") == model.cooc("a", "b") + 1


def test_counts_too_large_for_32_bits_are_kept_whole() -> None:
    model = CoOccurrence()
    model.add(["a"], "b", weight=2**31)
    clone = pickle.loads(pickle.dumps(model))
    assert clone.cooc("a", "b") == 2**31


def test_an_item_only_ever_seen_in_a_history_is_not_scored() -> None:
    """`x` was paired as someone's previous item but never learned itself (count 0): dividing
    by its count would score it infinite and put it first."""
    model = CoOccurrence(alpha=0.5)
    model.add(["x"], "a")
    model.add(["b"], "a")
    model.add([], "b")
    assert model.count("x") == 0 and model.cooc("a", "x") == 1
    got = model.recommend(["a"], k=5)
    assert [item for item, _ in got] == ["b"]
    assert all(math.isfinite(score) for score in model.score(["a"], ["b", "x"]))
    assert model.recommend(["a"], k=5, exclude=["b"]) == []
