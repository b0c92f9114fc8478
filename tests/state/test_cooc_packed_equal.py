"""The packed co-occurrence model (`tailor.state.recs.neighbour_pool`) against the per-row objects
it replaced (`tests.state.cooc_reference`), on real MovieLens ratings: every output equal, not
close. Small caps and a small first pool make rows pass the cap, move and get compacted many
times within a few tens of thousands of ratings."""

from __future__ import annotations

import csv
import pickle
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tailor.state.recs.neighbour_kernels as kernels
import tailor.state.recs.neighbour_pool as pool_module
from tailor.state.recs.base import Interaction, learn_batch
from tailor.state.recs.cooc_counts import CoOccurrence
from tailor.state.recs.cooccurrence import CoocRecommender
from tailor.state.recs.trending import MostPopular
from tests.state import cooc_reference
from tests.state.cooc_reference import CoOccurrence as Reference

Event = tuple[str, tuple[str, ...], str, int]  # user, previous items, item, weight
Model = CoOccurrence | Reference
SETTINGS: list[dict[str, Any]] = [
    {"max_neighbors": 12, "window": 10, "alpha": 0.25},
    {"max_neighbors": 5, "window": 4, "score_window": 3, "recency": 0.7, "alpha": 0.0},
]


def ratings(data_dir: Path, limit: int) -> Iterator[tuple[str, str, int]]:
    """(user, movie, weight) of the first `limit` ratings in file order; a 5 weighs 3."""
    with (data_dir / "movielens-latest-small" / "ratings.csv").open() as f:
        for n, row in enumerate(csv.DictReader(f)):
            if n == limit:
                return
            yield row["userId"], row["movieId"], 3 if row["rating"] == "5.0" else 1


def replay(data_dir: Path, limit: int) -> tuple[list[Event], dict[str, list[str]]]:
    """Events with the history as the user step keeps it (distinct, newest last, 20); every
    ninth with repeats and the item itself in it, every 13th with items never seen."""
    histories: dict[str, list[str]] = {}
    events: list[Event] = []
    for n, (user, item, weight) in enumerate(ratings(data_dir, limit)):
        history = histories.setdefault(user, [])
        previous = tuple(history)
        if n % 9 == 0 and history:
            previous = (*history[-3:], item, *history[-6:])
        elif n % 13 == 0:  # items first seen in a history (a replica's, or a bounded read)
            previous = (*history[-5:], f"unseen-{n}", f"unseen-{n // 2}")
        events.append((user, previous, item, weight))
        if item in history:
            history.remove(item)
        history.append(item)
        del history[:-20]
    return events, histories


@pytest.fixture(scope="module")
def movielens(data_dir: Path) -> tuple[list[Event], dict[str, list[str]]]:
    return replay(data_dir, 30_000)


@pytest.fixture
def compactions(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Pools start small (so they grow and compact often); counts the compactions."""
    calls: list[int] = []
    compact = kernels.compact

    def counted(*args: Any) -> int:
        calls.append(1)
        end: int = compact(*args)
        return end

    monkeypatch.setattr(pool_module, "MIN_POOL", 64)
    monkeypatch.setattr(kernels, "compact", counted)
    return calls


def assert_same(new: CoOccurrence, old: Reference, histories: dict[str, list[str]]) -> None:
    """Every read of the two models agrees exactly, slot order and snapshot bytes included."""
    ids = list(old._ids)
    assert list(new._ids) == ids and len(new) == len(old)
    for item in ids:
        assert new.count(item) == old.count(item)
        assert list(new.neighbors(item).items()) == list(old.neighbors(item).items())
    rng = random.Random(5)
    for a, b in zip(rng.choices(ids, k=300), rng.choices(ids, k=300), strict=True):
        assert new.cooc(a, b) == old.cooc(a, b)
    for user in sorted(histories)[::3]:
        history = histories[user]
        seen = set(history)
        recs = old.recommend(history, 10, seen)
        assert new.recommend(history, 10, seen) == recs
        assert new.recommend(history, 25, ()) == old.recommend(history, 25, ())
        asked = [item for item, _ in recs] + rng.choices(ids, k=5) + ["nowhere"]
        assert new.score(history, asked) == old.score(history, asked)
        assert new.explain(history, asked) == old.explain(history, asked)
    assert_snapshots_equal(new.to_snapshot(), old.to_snapshot())


def assert_snapshots_equal(new: dict[str, Any], old: dict[str, Any]) -> None:
    assert new.keys() == old.keys()
    for key, value in old.items():
        if isinstance(value, np.ndarray):
            assert new[key].dtype == value.dtype, key
            assert np.array_equal(new[key], value), key
        else:
            assert new[key] == value, key


def learn_all(model: Model, events: list[Event]) -> None:
    for _, previous, item, weight in events:
        model.add(previous, item, weight)


@pytest.mark.parametrize("settings", SETTINGS)
def test_movielens_replay_equals_the_per_row_model(
    movielens: tuple[list[Event], dict[str, list[str]]],
    compactions: list[int],
    settings: dict[str, Any],
) -> None:
    events, histories = movielens
    new, old = CoOccurrence(**settings), Reference(**settings)
    half = len(events) // 2
    learn_all(new, events[:half])
    learn_all(old, events[:half])
    assert_same(new, old, histories)
    learn_all(new, events[half:])
    learn_all(old, events[half:])
    assert_same(new, old, histories)
    assert compactions, "rows should have moved often enough to leave holes to compact"
    limit = 2 * settings["max_neighbors"]
    assert int(new._pool.size.max()) <= limit < int(new._pool.capacity.max())  # pruned

    forgotten = sorted(histories)[::4]
    for user in forgotten:
        new.unlearn_history(histories[user])
        old.unlearn_history(histories[user])
    assert_same(new, old, histories)
    learn_all(new, events[:5_000])  # learning goes on alike after the subtractions
    learn_all(old, events[:5_000])
    assert_same(new, old, histories)


@pytest.mark.parametrize("settings", SETTINGS)
def test_learn_many_equals_learn_one_in_a_loop(
    movielens: tuple[list[Event], dict[str, list[str]]],
    compactions: list[int],
    settings: dict[str, Any],
) -> None:
    events, histories = movielens
    batched, old = CoOccurrence(**settings), Reference(**settings)
    learn_all(old, events)
    rng = random.Random(11)
    at = 0
    while at < len(events):  # uneven batches, as remote batches come
        batch = events[at : at + rng.choice([1, 2, 7, 50, 400, 3_000])]
        batched.add_many([e[1] for e in batch], [e[2] for e in batch], [e[3] for e in batch])
        at += len(batch)
    assert compactions
    assert_same(batched, old, histories)
    batched.add_many([], [], [])
    assert_same(batched, old, histories)


def test_the_adapter_learns_a_batch_through_learn_many(
    movielens: tuple[list[Event], dict[str, list[str]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`learn_batch` (a replica's remote batch) reaches `CoOccurrence.add_many`, and the
    fill still learns every event."""
    events, _ = movielens
    batch = events[:2_000]
    interactions = [Interaction(user, item, 0.0, weight) for user, _, item, weight in batch]
    previous = [e[1] for e in batch]
    one, many = (
        CoocRecommender(CoOccurrence(), MostPopular()),
        CoocRecommender(CoOccurrence(), MostPopular()),
    )
    for event, history in zip(interactions, previous, strict=True):
        one.learn_one(event, history)
    batched: list[int] = []
    learn_many: Callable[..., None] = many.cooc.add_many
    monkeypatch.setattr(many.cooc, "add_many", lambda *args: batched.append(1) or learn_many(*args))
    learn_batch(many, interactions, previous, [()] * len(batch))
    assert batched == [1]
    assert_snapshots_equal(many.to_snapshot()["cooc"], one.to_snapshot()["cooc"])
    assert many.recommend("u", ["1"], 0.0, 20, set()) == one.recommend("u", ["1"], 0.0, 20, set())


def test_snapshots_load_across_the_two_implementations(
    movielens: tuple[list[Event], dict[str, list[str]]],
) -> None:
    """A snapshot written before the pool loads into it (and back): the format is unchanged."""
    events, histories = movielens
    settings = SETTINGS[0]
    old = Reference(**settings)
    learn_all(old, events[:10_000])
    new = CoOccurrence.from_snapshot(old.to_snapshot())
    assert_same(new, old, histories)
    back = cooc_reference.CoOccurrence.from_snapshot(new.to_snapshot())
    clone = pickle.loads(pickle.dumps(new))
    for model in (new, old, back, clone):
        learn_all(model, events[10_000:16_000])
    assert_same(new, old, histories)
    assert_same(clone, back, histories)
