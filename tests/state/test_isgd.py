from __future__ import annotations

import numpy as np
import pytest

from tailor.state.recs.isgd import ISGD


def test_one_positive_step_equals_the_hand_computation() -> None:
    model = ISGD(n_factors=2, learning_rate=0.05, regularization=0.01)
    model.set_user_factors("u", [0.1, 0.2])
    model.set_item_factors("i", [0.3, -0.1])
    model.add("u", "i")
    # u·i = 0.03 - 0.02 = 0.01, err = 0.99
    # u += 0.05 * (0.99 * [0.3, -0.1] - 0.01 * [0.1, 0.2]) = 0.05 * [0.296, -0.101]
    # i += 0.05 * (0.99 * [0.1, 0.2] - 0.01 * [0.3, -0.1]) = 0.05 * [0.096, 0.199]  (old u)
    assert model.user_factors("u") == pytest.approx([0.1148, 0.19495], abs=1e-12)
    assert model.item_factors("i") == pytest.approx([0.3048, -0.09005], abs=1e-12)


def test_negative_step_follows_the_positive_one_with_target_zero() -> None:
    model = ISGD(n_factors=2, learning_rate=0.05, regularization=0.01, negatives=1)
    model.set_item_factors("j", [0.5, 0.5])  # queued first: the least recent item
    model.set_user_factors("u", [0.1, 0.2])
    model.set_item_factors("i", [0.3, -0.1])
    model.add("u", "i")
    u1 = [0.1148, 0.19495]  # after the positive step (previous test)
    err = 0.0 - (u1[0] * 0.5 + u1[1] * 0.5)
    u2 = [u1[f] + 0.05 * (err * 0.5 - 0.01 * u1[f]) for f in range(2)]
    j2 = [0.5 + 0.05 * (err * u1[f] - 0.01 * 0.5) for f in range(2)]
    assert model.user_factors("u") == pytest.approx(u2, abs=1e-12)
    assert model.item_factors("j") == pytest.approx(j2, abs=1e-12)
    assert model.item_factors("i") == pytest.approx([0.3048, -0.09005], abs=1e-12)
    assert model.recency_queue() == ["i", "j"]  # j used, so moved behind i


def test_the_item_bias_takes_its_step_from_the_same_error() -> None:
    model = ISGD(n_factors=2, learning_rate=0.05, regularization=0.01, bias_learning_rate=0.1)
    model.set_item_factors("j", [0.5, 0.5])  # never interacted with: bias 0
    model.set_user_factors("u", [0.1, 0.2])
    model.set_item_factors("i", [0.3, -0.1])
    model.add("u", "i")
    # prediction u·i + b = 0.01 + 0 as before: the vectors move as in the plain step, and
    # b += 0.1 * (0.99 - 0.01 * 0) = 0.099
    assert model.user_factors("u") == pytest.approx([0.1148, 0.19495], abs=1e-12)
    assert model.item_bias("i") == pytest.approx(0.099, abs=1e-12)
    model.set_user_factors("v", [0.2, 0.1])
    model.add("v", "i")  # the bias is part of the prediction now
    err = 1.0 - (0.2 * 0.3048 + 0.1 * -0.09005) - 0.099
    assert model.item_bias("i") == pytest.approx(0.099 + 0.1 * (err - 0.01 * 0.099))
    assert model.item_bias("j") == 0.0
    # a stranger has no vector: the bias alone ranks the items
    assert [item for item, _ in model.recommend("stranger", k=2, exclude=[])] == ["i", "j"]
    assert model.score("stranger", ["j", "i", "nope"]) == pytest.approx(
        [0.0, model.item_bias("i"), 0.0]
    )


def test_a_negative_step_pushes_the_bias_towards_zero() -> None:
    model = ISGD(n_factors=2, learning_rate=0.05, regularization=0.0, negatives=1)
    model.bias_learning_rate = 0.5
    model.set_item_factors("j", [0.0, 0.0])
    model.set_user_factors("p", [0.0, 0.0])  # zero vectors stay zero: only biases move
    model.add("p", "j")  # bias of j: 0.5 * (1 - 0) = 0.5 (zero vectors: u·j = 0)
    assert model.item_bias("j") == pytest.approx(0.5)
    model.set_user_factors("q", [0.0, 0.0])
    model.add("q", "k")  # j is the least recent item q has not touched: target 0
    assert model.item_bias("j") == pytest.approx(0.5 + 0.5 * (0.0 - 0.5))


def test_negatives_are_the_least_recent_items_the_user_has_not_touched() -> None:
    model = ISGD(negatives=2)
    model.add("p", "a")
    model.add("p", "b")  # a is p's own item: no negative to take
    assert model.recency_queue() == ["a", "b"]
    before = {item: model.item_factors(item) for item in "ab"}
    model.add("q", "c")  # a and b from the front, then to the back in that order
    assert model.recency_queue() == ["c", "a", "b"]
    for item in "ab":
        assert not np.array_equal(model.item_factors(item), before[item])
    c_before = model.item_factors("c")
    model.add("q", "d")  # c is at the front but q touched it: skipped, stays
    assert model.recency_queue() == ["c", "d", "a", "b"]
    assert np.array_equal(model.item_factors("c"), c_before)
    model.add("r", "e")  # r touched nothing else: c and d, the two least recent
    assert model.recency_queue() == ["a", "b", "e", "c", "d"]


def test_plain_isgd_only_moves_the_event_item_to_the_back() -> None:
    model = ISGD()
    for item in "abc":
        model.add("p", item)
    before = model.item_factors("b")
    model.add("q", "a")
    assert model.recency_queue() == ["b", "c", "a"]
    assert np.array_equal(model.item_factors("b"), before)


def recommend_fixture() -> ISGD:
    model = ISGD(n_factors=2)
    model.set_user_factors("u", [1.0, 0.0])
    # rows not in id order, so ties at the cut-off must be settled by id, not position
    for item, vector in [
        ("d", [0.5, -1.0]),
        ("c", [0.9, 0.0]),
        ("b", [0.5, 1.0]),
        ("a", [0.5, 0.0]),
        ("e", [0.1, 0.0]),
    ]:
        model.set_item_factors(item, vector)
    return model


def test_recommend_ranks_by_score_with_ties_to_the_smaller_id() -> None:
    model = recommend_fixture()
    assert model.recommend("u", k=2, exclude=[]) == [("c", 0.9), ("a", 0.5)]
    assert model.recommend("u", k=3, exclude=[]) == [("c", 0.9), ("a", 0.5), ("b", 0.5)]
    everything = model.recommend("u", k=10, exclude=["unknown"])
    assert [item for item, _ in everything] == ["c", "a", "b", "d", "e"]


def test_recommend_excludes_items() -> None:
    model = recommend_fixture()
    assert model.recommend("u", k=2, exclude=["c", "a", "c"]) == [("b", 0.5), ("d", 0.5)]
    assert model.recommend("u", k=10, exclude={"a", "b", "c", "d"}) == [("e", 0.1)]
    assert model.recommend("u", k=3, exclude=["a", "b", "c", "d", "e"]) == []


def test_recommend_is_empty_for_an_unknown_user_or_no_k() -> None:
    model = recommend_fixture()
    assert model.recommend("stranger", k=3, exclude=[]) == []
    assert model.recommend("u", k=0, exclude=[]) == []
    assert model.n_users == 1  # a read only: the stranger was not created


def test_the_item_array_grows_without_losing_vectors() -> None:
    model = ISGD(n_factors=2)
    for n in range(200):
        model.set_item_factors(f"i{n:03d}", [float(n), 1.0])
    model.set_user_factors("u", [1.0, 0.0])
    assert model.n_items == 200
    assert model.item_factors("i000") == pytest.approx([0.0, 1.0])
    assert model.item_factors("i130") == pytest.approx([130.0, 1.0])
    assert model.recommend("u", k=2, exclude=["i199"]) == [("i198", 198.0), ("i197", 197.0)]


def events() -> list[tuple[str, str]]:
    return [(f"u{n % 7}", f"i{(n * 5) % 11}") for n in range(300)]


def test_same_seed_and_events_give_identical_factors() -> None:
    models = [ISGD(negatives=3, seed=5), ISGD(negatives=3, seed=5), ISGD(negatives=3, seed=6)]
    for model in models:
        for user, item in events():
            model.add(user, item)
    same, twin, other = models
    for user in ("u0", "u6"):
        assert np.array_equal(same.user_factors(user), twin.user_factors(user))
        assert not np.array_equal(same.user_factors(user), other.user_factors(user))
    for item in ("i0", "i10"):
        assert np.array_equal(same.item_factors(item), twin.item_factors(item))
    assert same.recommend("u1", 5, []) == twin.recommend("u1", 5, [])
    assert same.recency_queue() == twin.recency_queue()


def test_forget_user_removes_the_user() -> None:
    model = ISGD(negatives=1)
    model.add("p", "a")
    model.add("q", "b")
    assert model.seen("p") == {"a"}
    assert model.forget_user("p") is True
    assert model.user_factors("p") is None
    assert model.seen("p") == set()
    assert model.recommend("p", k=3, exclude=[]) == []
    assert model.n_users == 1
    assert model.n_items == 2  # items are shared: they stay
    assert model.forget_user("p") is False
    # a returning user starts over: a fresh vector and no remembered items, so "a" (the
    # least recent item) is no longer skipped as one of p's own
    model.add("p", "b")
    assert model.recency_queue() == ["b", "a"]


def test_invalid_parameters_and_vectors_are_rejected() -> None:
    with pytest.raises(ValueError):
        ISGD(n_factors=0)
    with pytest.raises(ValueError):
        ISGD(negatives=-1)
    with pytest.raises(ValueError):
        ISGD(learning_rate=0.0)
    with pytest.raises(ValueError):
        ISGD(n_factors=2).set_user_factors("u", [1.0, 2.0, 3.0])
