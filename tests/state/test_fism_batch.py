"""FISM.learn_many: a batch of interactions in summed steps, what learn_one calls would do."""

from __future__ import annotations

import pickle
from collections.abc import Collection, Sequence
from pathlib import Path

import numpy as np
import pytest

from flows.evaluate import load_interactions, push_history, replay
from state.fism import FISM, FISMRecommender
from state.rec_settings import RecSettings, build
from state.recommender import Interaction


def assert_same(one: FISM, other: FISM) -> None:
    a, b = one.to_snapshot(), other.to_snapshot()
    assert a["item_ids"] == b["item_ids"]
    assert a["queue"].tolist() == b["queue"].tolist()
    for name in ("p", "q", "bias"):
        np.testing.assert_allclose(a[name], b[name], rtol=1e-12, atol=1e-15)
    assert a["rng"] == b["rng"]


def default_fism() -> FISM:
    """FISM with the `isgd` recommender's default settings."""
    recommender = build("isgd", RecSettings())
    assert isinstance(recommender, FISMRecommender)
    return recommender.model


def movielens_steps(data_dir: Path, n: int) -> list[tuple[str, list[str], frozenset[str]]]:
    """(item, history, exclusions) per rating, the history kept as the live step keeps it."""
    ratings = data_dir / "movielens-latest-small" / "ratings.csv"
    histories: dict[str, list[str]] = {}
    seen: dict[str, set[str]] = {}
    steps = []
    for event in load_interactions([ratings], "movielens")[:n]:
        history = histories.setdefault(event.user, [])
        mine = seen.setdefault(event.user, set())
        steps.append((event.item, list(history), frozenset(mine)))
        mine.add(event.item)
        push_history(history, event.item, 20)
    return steps


def test_a_batch_of_one_is_learn_one_on_a_real_stream(data_dir: Path) -> None:
    sequential, batched = default_fism(), default_fism()
    for item, history, exclude in movielens_steps(data_dir, 2000):
        sequential.learn_one(item, history, exclude)
        batched.learn_many([item], [history], [exclude])
    assert sequential.n_items > 300
    assert_same(sequential, batched)


def disjoint_world() -> tuple[FISM, FISM]:
    """Two copies of a model whose queue front is n0..n5, then the history rows."""
    model = FISM(n_factors=3, negatives=2, bias_learning_rate=0.05, history=2, seed=4)
    vectors = np.random.default_rng(9).normal(0.0, 0.3, (11, 2, 3))
    names = [f"n{n}" for n in range(6)] + ["h1", "h2", "h3", "h4", "x"]
    for item, (p, q) in zip(names, vectors, strict=True):
        model.set_item_factors(item, p, q)
    twin = pickle.loads(pickle.dumps(model))
    return model, twin


def test_events_on_disjoint_rows_equal_sequential_calls() -> None:
    sequential, batched = disjoint_world()
    # event 1: item a (new), history h1 h2, negatives n0 n1; event 2: item b (new),
    # history h3 h4, negatives n2 n3 (n0, n1 went to the back); nothing shared
    events = [("a", ["h1", "h2"]), ("b", ["h3", "h4"])]
    for item, history in events:
        sequential.learn_one(item, history)
    batched.learn_many([item for item, _ in events], [history for _, history in events])
    assert sequential.recency_queue()[:2] == ["n4", "n5"]
    assert_same(sequential, batched)


def test_rows_one_event_skips_stay_at_the_front_for_the_next() -> None:
    sequential, batched = disjoint_world()
    # event 1 excludes n0 and n1: it takes n2 n3; event 2 then takes n0 n1, as learn_one does
    items, histories, excludes = ["a", "b"], [["h1"], ["h3"]], [{"n0", "n1"}, set()]
    for item, history, exclude in zip(items, histories, excludes, strict=True):
        sequential.learn_one(item, history, exclude)
    batched.learn_many(items, histories, excludes)
    assert sequential.recency_queue()[-6:] == ["a", "n2", "n3", "b", "n0", "n1"]
    assert_same(sequential, batched)


def test_a_shared_row_learns_from_the_batch_start() -> None:
    """The one thing that differs: gradients of one chunk are summed, not chained."""
    sequential, batched = disjoint_world()
    sequential.learn_many(["a", "b"], [["h1"], ["h1"]], chunk=1)  # chained, as learn_one
    batched.learn_many(["a", "b"], [["h1"], ["h1"]])
    assert sequential.recency_queue() == batched.recency_queue()
    assert not np.allclose(sequential.to_snapshot()["p"], batched.to_snapshot()["p"])


class Batched(FISMRecommender):
    """Learns the replay's events in batches (served from the model before each batch)."""

    def __init__(self, model: FISM, size: int, many: bool) -> None:
        super().__init__(model)
        self.size, self.many = size, many
        self.pending: list[tuple[Interaction, list[str], frozenset[str]]] = []

    def learn_one(
        self, event: Interaction, history: Sequence[str], exclude: Collection[str] = ()
    ) -> None:
        self.pending.append((event, list(history), frozenset(exclude)))
        if len(self.pending) < self.size:
            return
        if self.many:
            events, histories, excludes = zip(*self.pending, strict=True)
            self.learn_many(events, histories, excludes)
        else:
            for event, history, exclude in self.pending:
                super().learn_one(event, history, exclude)
        self.pending = []


def test_batches_of_500_keep_the_quality_of_learning_them_one_by_one(data_dir: Path) -> None:
    """Prequential Recall@10 over the first 20,000 MovieLens ratings, both models learning
    each 500 ratings at once after serving them (as a replica learns another's batch), one
    with learn_many, one with learn_one calls: learn_many stays within 8 %."""
    ratings = data_dir / "movielens-latest-small" / "ratings.csv"
    interactions = load_interactions([ratings], "movielens")[:20_000]
    recall = {}
    for many in (True, False):
        batched = Batched(default_fism(), 500, many)
        recall[many] = replay(batched, interactions, 10, 20).totals()["recall"]
    assert recall[True] > 0.95 * recall[False]


def test_a_snapshot_after_learn_many_resumes_alike() -> None:
    model = FISM(n_factors=4, negatives=3, bias_learning_rate=0.03, seed=2)
    items = [f"i{(n * 7) % 31}" for n in range(300)]
    histories = [items[max(0, n - 5) : n] for n in range(300)]
    model.learn_many(items, histories)
    copy = FISM.from_snapshot(pickle.loads(pickle.dumps(model.to_snapshot())))
    for resumed in (model, copy):
        resumed.learn_many(["i3", "new"], [["i1", "i2"], ["i3"]], [{"i4"}, set()])
    assert_same(model, copy)
    assert copy.recommend(["i3"], 5, {"i3"}) == model.recommend(["i3"], 5, {"i3"})


def test_mismatched_lengths_are_rejected() -> None:
    with pytest.raises(ValueError):
        FISM().learn_many(["a", "b"], [[]])
    with pytest.raises(ValueError):
        FISM().learn_many(["a"], [[]], [set(), set()])
    with pytest.raises(ValueError):
        FISM().learn_many(["a"], [[]], chunk=0)
