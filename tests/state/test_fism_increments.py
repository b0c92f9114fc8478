"""FISM as an incremental part: a base patched with its changes (ids appended since, the
array rows the compiled step wrote since, or all of them, the generator and queue) is its
snapshot, on MovieLens with the live step's exclusions; changes cost what changed."""

from __future__ import annotations

import pickle
from collections.abc import Callable, Sequence
from functools import partial
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tailor.flows.evaluate import load_interactions, push_history
from tailor.state.recs.fism import FISM
from tests.state.increment_support import check_rounds
from tests.state.older_marks import check_older_marks
from tests.state.test_fism_exact import SETTINGS

Event = tuple[str, list[str], set[str]]


@pytest.fixture(scope="module")
def movielens(data_dir: Path) -> list[Event]:
    """(item, history, exclude) of the first 40,000 ratings as the live step hands them over
    (the last 20 distinct items; the user's rated items excluded, up to 100 of them)."""
    ratings = data_dir / "movielens-latest-small" / "ratings.csv"
    histories: dict[str, list[str]] = {}
    seen: dict[str, list[str]] = {}
    events: list[Event] = []
    for event in load_interactions([ratings], "movielens")[:40_000]:
        history = histories.setdefault(event.user, [])
        mine = seen.setdefault(event.user, [])
        events.append((event.item, list(history), set(mine[-100:])))
        mine.append(event.item)
        push_history(history, event.item, 20)
    return events


def learn(model: FISM, events: Sequence[Event], many: bool) -> None:
    if many and events:
        items, histories, excludes = zip(*events, strict=True)
        model.learn_many(items, histories, excludes)
    else:
        for item, history, exclude in events:
            model.learn_one(item, history, exclude)


def steps_of(model: FISM, events: list[Event], sizes: list[int]) -> list[Callable[[], None]]:
    """Steps learning the next `sizes[i]` events each, one by one and in batches by turns;
    every fourth also sets an item's vectors (a known one, and a new one)."""
    bounds = np.cumsum([0, *sizes]).tolist()
    steps: list[Callable[[], None]] = []
    for n, (start, stop) in enumerate(pairwise(bounds)):
        steps.append(partial(learn, model, events[start:stop], n % 2 == 1))
        if n % 4 == 3:
            vector = np.full(model.n_factors, 0.01 * n)
            steps.append(partial(model.set_item_factors, events[start][0], vector, vector))
            steps.append(partial(model.set_item_factors, f"warm-{n}", vector, -vector))
    return steps


def recorded(model: FISM, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """The way each `changes_since` sent q and bias, and p: written rows or all rows."""
    kinds: list[tuple[str, str]] = []
    changes_since = model.changes_since

    def record(mark: int) -> dict[str, Any]:
        changes = changes_since(mark)
        way = {True: "all", False: "rows"}
        kinds.append((way[changes["rows"] is None], way[changes["p_rows"] is None]))
        return changes

    monkeypatch.setattr(model, "changes_since", record)
    return kinds


def test_a_base_patched_with_the_changes_is_the_snapshot(
    movielens: list[Event], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Steps of 1 to 3,000 events (new items after the base, warm starts), a new base every
    3 steps: small steps send the rows written, large ones every row of q and bias but p's
    rows written (u's rows are fewer than the negatives)."""
    model = FISM(**SETTINGS)
    learn(model, movielens[:10_000], many=True)
    kinds = recorded(model, monkeypatch)
    sizes = [1, 12, 3000, 2, 400, 40, 2500, 5, 900, 60, 3000, 1, 9000, 7000, 30]
    check_rounds(model, steps_of(model, movielens[10_000:], sizes), recut_every=3)
    assert {("rows", "rows"), ("all", "rows")} <= set(kinds), kinds


def test_a_small_catalogue_sends_its_arrays_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    """30 items, each in many histories: p too is written in every row."""
    rng = np.random.default_rng(3)
    events: list[Event] = []
    for _ in range(3000):
        items = [f"i{n}" for n in rng.integers(0, 30, 6)]
        events.append((items[-1], items[:-1], set()))
    model = FISM(**{**SETTINGS, "negatives": 4})
    kinds = recorded(model, monkeypatch)
    check_rounds(model, steps_of(model, events, [1, 500, 2, 900, 3, 700, 40]), recut_every=2)
    assert {("rows", "rows"), ("all", "all")} <= set(kinds), kinds


def test_changes_since_older_marks_are_answered(movielens: list[Event]) -> None:
    model = FISM(**SETTINGS)
    learn(model, movielens[:8000], many=True)
    sizes = [3, 200, 1, 1500, 20, 700, 4000, 9] * 2
    check_older_marks(model, steps_of(model, movielens[8000:], sizes))


def test_changes_after_little_learning_cost_what_changed(movielens: list[Event]) -> None:
    """A few events on ~5,000 items: under a tenth of the whole (most of it the queue)."""
    model = FISM(**SETTINGS)
    learn(model, movielens[:30_000], many=True)
    whole = len(pickle.dumps(model.to_snapshot(), protocol=pickle.HIGHEST_PROTOCOL))
    largest = check_rounds(model, steps_of(model, movielens[30_000:], [3, 3, 3]), 1)
    assert largest * 10 < whole
