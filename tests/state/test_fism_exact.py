"""The compiled bookkeeping (recency queue, negatives, one kernel call per event or per batch)
learns exactly what FISM learned before it (`tests/state/fism_support.py`): the same factors,
biases, queue, draws and lists, bit for bit, on real MovieLens ratings with exclusions."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from tailor.flows.evaluate import load_interactions, push_history
from tailor.state import snapshots
from tailor.state.recs.base import BatchLearner, Interaction, learn_batch
from tailor.state.recs.fism import FISM
from tailor.state.recs.fism_recommender import FISMRecommender
from tailor.state.recs.settings import build, restore
from tests.settings_support import rec_settings
from tests.state import fism_support

Event = tuple[str, list[str], set[str]]
Model = FISM | fism_support.FISM
#: The `isgd` recommender's defaults (10 factors, 16 negatives, the last 10 history items).
SETTINGS = {
    "n_factors": 10,
    "learning_rate": 0.3,
    "regularization": 0.01,
    "negatives": 16,
    "init_std": 0.03,
    "bias_learning_rate": 0.03,
    "alpha": 0.5,
    "history": 10,
    "seed": 11,
}


@pytest.fixture(scope="module")
def movielens(data_dir: Path) -> list[Event]:
    """(item, history, exclude) of the first 30,000 ratings as the live step hands them over:
    the user's last 20 distinct items, and everything the user rated before excluded (the
    whole kept history: many exclusions reach the front of the queue)."""
    ratings = data_dir / "movielens-latest-small" / "ratings.csv"
    histories: dict[str, list[str]] = {}
    seen: dict[str, set[str]] = {}
    events: list[Event] = []
    for event in load_interactions([ratings], "movielens")[:30_000]:
        history = histories.setdefault(event.user, [])
        mine = seen.setdefault(event.user, set())
        events.append((event.item, list(history), set(mine)))
        mine.add(event.item)
        push_history(history, event.item, 20)
    return events


def assert_same(new: FISM, old: fism_support.FISM) -> None:
    n = old.n_items
    assert new._item_ids == old._item_ids
    assert np.array_equal(new._p[:n], old._p[:n])
    assert np.array_equal(new._q[:n], old._q[:n])
    assert np.array_equal(new._bias[:n], old._bias[:n])
    assert new.recency_queue() == old.recency_queue()
    assert new._rng.bit_generator.state == old._rng.bit_generator.state


def learned_one_by_one(model: Model, events: Sequence[Event]) -> Model:
    for item, history, exclude in events:
        model.learn_one(item, history, exclude)
    return model


def batches(events: Sequence[Event], sizes: Sequence[int]) -> Iterator[Sequence[Event]]:
    start = 0
    for size in itertools.cycle(sizes):
        if start >= len(events):
            return
        yield events[start : start + size]
        start += size


def test_learn_one_equals_the_python_bookkeeping_on_movielens(movielens: list[Event]) -> None:
    old = learned_one_by_one(fism_support.FISM(**SETTINGS), movielens)
    new = learned_one_by_one(FISM(**SETTINGS), movielens)
    assert isinstance(new, FISM) and isinstance(old, fism_support.FISM)
    assert_same(new, old)
    for _item, history, exclude in movielens[-200:]:
        assert new.recommend(history, 10, exclude) == old.recommend(history, 10, exclude)
    # the exclusions did decide negatives: without them the queue ends up elsewhere
    unexcluded = learned_one_by_one(FISM(**SETTINGS), [(i, h, set()) for i, h, _ in movielens])
    assert unexcluded.recency_queue() != new.recency_queue()


def test_learn_many_equals_learn_one_in_a_loop(movielens: list[Event]) -> None:
    """Batches of all sizes (a replica's remote batches), mixed with single events (its own)."""
    events = movielens[:12_000]
    old = learned_one_by_one(fism_support.FISM(**SETTINGS), events)
    new = FISM(**SETTINGS)
    for n, batch in enumerate(batches(events, [1, 7, 64, 500, 3])):
        if n % 5 == 4:
            learned_one_by_one(new, batch)
        else:
            items, histories, excludes = zip(*batch, strict=True)
            new.learn_many(items, histories, excludes)
    assert isinstance(old, fism_support.FISM)
    assert_same(new, old)


def small_events() -> list[Event]:
    """A catalogue smaller than the negatives asked for, repeats of the item in its history,
    history duplicates, unknown items in histories and exclusions, new items whose ids were
    excluded (or in a history) before their first sight in the same batch, and exclusions
    large enough to be found from the queue's side, some of them the whole catalogue."""
    events: list[Event] = []
    for n in range(600):
        item = f"i{(n * 7) % 29}" if n > 40 else f"i{n % 9}"
        history = [f"i{(n * 3 + j) % 31}" for j in range(n % 13)] + [item] * (n % 2)
        exclude = {f"i{(n * 5) % 37}", f"i{(n + 1) % 41}", "never"}
        if n % 7 == 0:
            exclude |= {f"i{j}" for j in range(n % 40, n % 40 + 70)}
        events.append((item, history, exclude))
    return events


@pytest.mark.parametrize("negatives", [0, 3, 40])
def test_small_catalogues_and_odd_histories_are_learned_alike(negatives: int) -> None:
    settings = {**SETTINGS, "negatives": negatives, "history": 4}
    events = small_events()
    old = learned_one_by_one(fism_support.FISM(**settings), events)
    new = FISM(**settings)
    for batch in batches(events, [50, 1, 200]):
        items, histories, excludes = zip(*batch, strict=True)
        new.learn_many(items, histories, excludes)
    assert isinstance(old, fism_support.FISM)
    assert_same(new, old)


def test_snapshots_keep_their_format_both_ways(movielens: list[Event]) -> None:
    """The snapshot is what it was (the queue as an int64 array of rows, head first): one
    written before loads and learns on as before, and one written now loads in the old."""
    first, then = movielens[:5000], movielens[5000:8000]
    old = learned_one_by_one(fism_support.FISM(**SETTINGS), first)
    new = learned_one_by_one(FISM(**SETTINGS), first)
    written, writing = old.to_snapshot(), new.to_snapshot()
    assert list(written) == list(writing)
    for key, value in written.items():
        arrays = key in ("p", "q", "bias", "queue")
        assert np.array_equal(writing[key], value) if arrays else writing[key] == value
    assert writing["queue"].dtype == written["queue"].dtype == np.int64
    envelope = snapshots.encode("models", written)
    resumed = FISM.from_snapshot(snapshots.decode(envelope, "models"))
    back = fism_support.FISM.from_snapshot(writing)
    for model in (old, new, resumed, back):
        learned_one_by_one(model, then)
    assert isinstance(old, fism_support.FISM)
    assert_same(resumed, old)
    assert_same(new, back)


def test_the_hybrids_replica_batches_go_through_learn_many(movielens: list[Event]) -> None:
    """`learn_batch` (a replica's remote events) takes FISM's batch path, with its result."""
    recommender = build("isgd", rec_settings(seed=11))
    assert isinstance(recommender, FISMRecommender) and isinstance(recommender, BatchLearner)
    events = movielens[:3000]
    interactions = [Interaction("u", item, float(n)) for n, (item, _, _) in enumerate(events)]
    learn_batch(recommender, interactions, [h for _, h, _ in events], [x for _, _, x in events])
    copy = restore(recommender.to_snapshot())
    assert isinstance(copy, FISMRecommender)
    old = learned_one_by_one(fism_support.FISM(**SETTINGS), events)
    assert isinstance(old, fism_support.FISM)
    assert_same(recommender.model, old)
    assert_same(copy.model, old)
