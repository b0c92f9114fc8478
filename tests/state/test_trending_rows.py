"""The row-ordered `Trending` (append-only ids, a weight per row, increments) ranks, scores,
breaks ties and snapshots exactly as the dict `Trending` did (`trending_reference`), on
MovieLens with renormalisations; its changes since a mark patch a base into its snapshot and
cost what changed."""

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
from tailor.state.recs.trending import MostPopular, Trending, TrendingRecommender
from tests.state import trending_reference
from tests.state.increment_support import check_rounds, same
from tests.state.older_marks import check_older_marks

DAY = 86400.0


@pytest.fixture(scope="module")
def movielens(data_dir: Path) -> list[Interaction]:
    return load_interactions([data_dir / "movielens-latest-small" / "ratings.csv"], "movielens")


def jittered(events: list[Interaction], seed: int) -> list[tuple[str, str, float, int]]:
    """(user, item, ts, weight), each ts moved back up to a day (out of order, as live)."""
    back = np.random.default_rng(seed).uniform(0.0, DAY, len(events)).tolist()
    return [(e.user, e.item, e.ts - b, e.weight) for e, b in zip(events, back, strict=True)]


def assert_same_snapshots(new: Trending, old: trending_reference.Trending) -> None:
    """The same snapshot but the cached ids the old one wrote, and the same cache."""
    written = old.to_snapshot()
    assert written.pop("cache") == [item for _, item in new._cache]
    same(new.to_snapshot(), written)


@pytest.mark.parametrize("halflife", [3600.0, 30 * DAY, float("inf")])
def test_rankings_scores_and_snapshots_equal_the_dict_trending(
    movielens: list[Interaction], halflife: float
) -> None:
    """Every 20 events the top lists (a heavy user's exclusions growing the cache included),
    scores and sizes are equal, floats bit for bit; every 5,000 the snapshots (but the old
    one's cached ids, which loading rebuilds, equal), and the old one's loads with its
    cache. An hour's half-life renormalises hundreds of times and forgets items; no decay
    never does."""
    new, old = Trending(halflife, cache_size=5), trending_reference.Trending(halflife, 5)
    seen: dict[str, set[str]] = {}
    renormalised = 0
    for n, (user, item, ts, weight) in enumerate(jittered(movielens, 3)):
        t0 = old._t0
        new.add(item, ts, weight)
        old.add(item, ts, weight)
        renormalised += t0 is not None and old._t0 != t0
        mine = seen.setdefault(user, set())
        mine.add(item)
        if n % 20 == 0:
            assert new.top(10, mine) == old.top(10, mine)
            assert new.top(3) == old.top(3)
            probe = [item, "unknown", *list(mine)[:5]]
            assert [new.score(i) for i in probe] == [old.score(i) for i in probe]
            assert len(new) == len(old) and new.cache_size == old.cache_size
        if n % 5000 == 0:
            assert_same_snapshots(new, old)
            loaded = Trending.from_snapshot(old.to_snapshot())  # written with its cache
            assert loaded._cache == old._cache and loaded.top(30) == old.top(30)
            assert Trending.from_snapshot(new.to_snapshot())._cache == new._cache
    assert_same_snapshots(new, old)
    new.refresh()
    old.refresh()
    assert new.top(50) == old.top(50)
    if halflife == 3600.0:
        assert renormalised > 100 and len(old) < 1000  # most items forgotten at the end


def learning_steps(
    model: Trending, events: list[tuple[str, str, float, int]], sizes: list[int]
) -> list[Callable[[], None]]:
    """Steps of `check_rounds`, each learning the next `sizes[i]` events."""
    bounds = np.cumsum([0, *sizes]).tolist()

    def step(start: int, stop: int) -> None:
        for _, item, ts, weight in events[start:stop]:
            model.add(item, ts, weight)
        model.top(4, {item for _, item, _, _ in events[start:stop][:30]})  # may grow the cache

    return [partial(step, a, b) for a, b in pairwise(bounds)]


@pytest.mark.parametrize("halflife", [3 * DAY, float("inf")])
def test_a_base_patched_with_the_changes_is_the_snapshot(
    movielens: list[Interaction], halflife: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After each step of learning (new items after the base, rows rewritten, out-of-order
    times, renormalisations renumbering the rows with 3 days' half-life), through pickle,
    with a new base every 3 steps; steps of 1 to 4,000 events, so both ways of sending the
    weights (rows written, all) occur."""
    events = jittered(movielens, 5)
    model = Trending(halflife, cache_size=3)
    for _, item, ts, weight in events[:20_000]:
        model.add(item, ts, weight)
    sizes = [1, 7, 300, 4000, 2, 2500, 40, 1, 3000, 800, 8000, 5, 6000] * 3
    kinds: list[str] = []
    changes_since = model.changes_since

    def recorded(mark: int) -> dict[str, Any]:
        changes = changes_since(mark)
        kinds.append(
            "whole" if "whole" in changes else "all" if changes["rows"] is None else "rows"
        )
        return changes

    monkeypatch.setattr(model, "changes_since", recorded)
    check_rounds(model, learning_steps(model, events[20_000:], sizes), recut_every=3)
    assert len(kinds) == len(sizes) and {"all", "rows"} <= set(kinds)
    assert ("whole" in kinds) == (halflife < float("inf"))


def test_changes_since_older_marks_are_answered_from_the_stamps(
    movielens: list[Interaction],
) -> None:
    """Bases of up to 4 marks back each patched to the snapshot after every step (rows
    written in several generations, renormalisations among them with 2 days' half-life)."""
    events = jittered(movielens, 11)
    model = Trending(2 * DAY, cache_size=4)
    for _, item, ts, weight in events[:30_000]:
        model.add(item, ts, weight)
    sizes = [3, 400, 1, 50, 2000, 9, 700, 5000, 20, 1500] * 3
    check_older_marks(model, learning_steps(model, events[30_000:], sizes))


def test_changes_after_little_learning_cost_what_changed(movielens: list[Interaction]) -> None:
    """30 events on a trending of ~9,000 items: changes under a twentieth of the whole, and
    they still patch the base into the snapshot."""
    events = jittered(movielens, 7)
    model = Trending(30 * DAY)
    for _, item, ts, weight in events[:80_000]:
        model.add(item, ts, weight)
    whole = len(pickle.dumps(model.to_snapshot(), protocol=pickle.HIGHEST_PROTOCOL))
    largest = check_rounds(model, learning_steps(model, events[80_000:], [30, 30]), 1)
    assert largest * 20 < whole


def test_a_renormalisation_sends_the_whole_once_and_a_new_base_ends_it() -> None:
    t = Trending(halflife_s=1.0)
    for item in "abc":
        t.add(item, 0.0)
    base, mark = t.to_snapshot(), t.mark()
    t.add("b", 400.0)  # a and c forgotten: rows renumbered
    same(Trending.patched(base, t.changes_since(mark)), t.to_snapshot())
    assert "whole" in t.changes_since(mark) and t.to_snapshot()["items"] == ["b"]
    base, mark = t.to_snapshot(), t.mark()
    t.add("d", 400.5)
    changes = t.changes_since(mark)
    assert "whole" not in changes and changes["items"] == ["d"]
    same(Trending.patched(base, changes), t.to_snapshot())


@pytest.mark.parametrize("cls", [TrendingRecommender, MostPopular])
def test_the_recommenders_store_their_trending_as_a_part(cls: type[TrendingRecommender]) -> None:
    """Outside a replica's writing, `part` is the whole snapshot: stores stay as they were."""
    model = cls()
    model.learn_one(Interaction("u", "a", 5.0), ())
    data = model.to_snapshot()
    same(data["trending"], model.trending.to_snapshot())
    assert cls.from_snapshot(data).recommend("v", (), 5.0, 3, set()) == [("a", 1.0)]
