"""`CategoryPopular` as one incremental part: a base patched with its changes (the items given
categories since, each written category's trending changes, a category new since whole) is
its snapshot, on MovieLens genres with renormalisations; the changes cost what changed."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from functools import partial
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tailor.flows.evaluate import load_interactions
from tailor.state.recs.base import Interaction
from tailor.state.recs.group_trending import CategoryPopular
from tests.state.increment_support import check_rounds
from tests.state.older_marks import check_older_marks

DAY = 86400.0


@pytest.fixture(scope="module")
def movielens(data_dir: Path) -> list[Interaction]:
    return load_interactions([data_dir / "movielens-latest-small" / "ratings.csv"], "movielens")


def learn(model: CategoryPopular, events: list[Interaction]) -> None:
    for event in events:
        model.learn_one(event, ())


def steps_of(
    model: CategoryPopular, events: list[Interaction], sizes: list[int]
) -> list[Callable[[], None]]:
    """Steps learning the next `sizes[i]` events each; every third also an item of a genre
    nobody has seen (a category new after the base)."""
    bounds = np.cumsum([0, *sizes]).tolist()
    steps: list[Callable[[], None]] = []
    for n, (start, stop) in enumerate(pairwise(bounds)):
        chunk = events[start:stop]
        if n % 3 == 1:
            last = chunk[-1]
            chunk = [*chunk, Interaction("u", f"new-{n}", last.ts, 1, (f"Genre {n}", "Drama"))]
        steps.append(partial(learn, model, chunk))
    return steps


@pytest.mark.parametrize("halflife", [2 * DAY, float("inf")])
def test_a_base_patched_with_the_changes_is_the_snapshot(
    movielens: list[Interaction], halflife: float
) -> None:
    """New items, rows rewritten, new categories and (2 days' half-life) renormalisations of
    some categories' trendings, in steps of 1 to 8,000 events, a new base every 3 steps."""
    model = CategoryPopular(halflife)
    learn(model, movielens[:20_000])
    sizes = [1, 9, 400, 8000, 3, 2500, 60, 1, 5000, 700, 6000, 2] * 3
    check_rounds(model, steps_of(model, movielens[20_000:], sizes), recut_every=3)


def test_changes_since_older_marks_are_answered(movielens: list[Interaction]) -> None:
    model = CategoryPopular(3 * DAY)
    learn(model, movielens[:30_000])
    sizes = [2, 300, 1, 4000, 50, 900, 7000, 11] * 3
    check_older_marks(model, steps_of(model, movielens[30_000:], sizes))


def test_changes_after_little_learning_cost_what_changed(movielens: list[Interaction]) -> None:
    """20 events on ~9,000 items in 20 genres: changes under a twentieth of the whole."""
    model = CategoryPopular(30 * DAY)
    learn(model, movielens[:80_000])
    whole = len(pickle.dumps(model.to_snapshot(), protocol=pickle.HIGHEST_PROTOCOL))
    largest = check_rounds(model, steps_of(model, movielens[80_000:], [20, 20, 20]), 1)
    assert largest * 20 < whole


def test_the_changes_are_one_flat_record_with_every_way_of_sending_a_category(
    movielens: list[Interaction], monkeypatch: pytest.MonkeyPatch
) -> None:
    """However many categories changed, the changes are flat lists (no dict per category),
    and over the steps a category's weights are sent each way: rows written (new rows
    among them), all rows, its whole snapshot (a genre new since the base); items of
    several genres keep their genres in order."""
    model = CategoryPopular(30 * DAY)
    learn(model, movielens[:20_000])
    ways: set[str] = set()
    several = False
    changes_since = model.changes_since

    def recorded(mark: int) -> dict[str, Any]:
        nonlocal several
        changes = changes_since(mark)
        assert all(isinstance(value, list | dict) for value in changes.values())
        assert len(changes["counts"]) == 2 * len(changes["names"]) == 2 * len(changes["clocks"])
        written = changes["counts"][::2]
        ways.update({"rows" for n in written if n >= 0} | {"all" for n in written if n < 0})
        ways.update({"whole"} if changes["whole"] else set())
        several = several or any(n > 1 for n in changes["category_counts"])
        return changes

    monkeypatch.setattr(model, "changes_since", recorded)
    sizes = [1, 3000, 20, 1, 400, 5000]
    check_rounds(model, steps_of(model, movielens[20_000:], sizes), recut_every=3)
    assert ways == {"rows", "all", "whole"} and several
