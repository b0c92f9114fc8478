"""`CoOccurrence` as an `Incremental` (`tailor.state.increments`): a base patched with the changes
since equals the whole snapshot after every kind of write, on real MovieLens ratings. Small
caps and small first pools make rows get pruned, move and the pool compact within the replay
(`tests.state.test_cooc_packed_equal`), and each kind is asserted to have happened."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tailor.state.recs.neighbour_kernels as kernels
import tailor.state.recs.neighbour_pool as pool_module
from tailor.state import increments
from tailor.state.recs.cooc_counts import CoOccurrence
from tailor.state.recs.cooccurrence import CoocRecommender
from tests.state.increment_support import check_rounds, same
from tests.state.test_cooc_packed_equal import SETTINGS, Event, replay

History = dict[str, list[str]]


@pytest.fixture(scope="module")
def movielens(data_dir: Path) -> tuple[list[Event], History]:
    return replay(data_dir, 12_000)


@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Pools start small; counts the compactions, the prunes that dropped neighbours and
    the rows emptied by forgetting."""
    seen = {"compact": 0, "prune": 0, "clear": 0}
    Pool = pool_module.NeighbourPool
    compact, prune, clear = kernels.compact, Pool.prune, Pool.clear

    def counted_compact(*args: Any) -> int:
        seen["compact"] += 1
        end: int = compact(*args)
        return end

    def counted_prune(pool: pool_module.NeighbourPool, row: int, *args: Any) -> None:
        before = int(pool.size[row])
        prune(pool, row, *args)
        seen["prune"] += int(pool.size[row]) < before

    def counted_clear(pool: pool_module.NeighbourPool, row: int) -> None:
        seen["clear"] += 1
        clear(pool, row)

    monkeypatch.setattr(pool_module, "MIN_POOL", 64)
    monkeypatch.setattr(kernels, "compact", counted_compact)
    monkeypatch.setattr(Pool, "prune", counted_prune)
    monkeypatch.setattr(Pool, "clear", counted_clear)
    return seen


def learning(model: CoOccurrence, events: list[Event], batched: bool) -> Callable[[], None]:
    def step() -> None:
        if batched:
            model.add_many([e[1] for e in events], [e[2] for e in events], [e[3] for e in events])
        else:
            for _, previous, item, weight in events:
                model.add(previous, item, weight)

    return step


def asserting(step: Callable[[], None], writes: dict[str, int], kind: str) -> Callable[[], None]:
    """`step`, which must have done at least one write of `kind`."""

    def checked() -> None:
        before = writes[kind]
        step()
        assert writes[kind] > before, f"the step should {kind}"

    return checked


@pytest.mark.parametrize("settings", SETTINGS)
def test_every_step_patches_the_base_to_the_whole_snapshot(
    movielens: tuple[list[Event], History], writes: dict[str, int], settings: dict[str, Any]
) -> None:
    events, histories = movielens
    model = CoOccurrence(**settings)
    learning(model, events[:3_000], batched=False)()
    users = sorted(histories)
    new_ids: list[int] = []

    def forget(some: list[str]) -> Callable[[], None]:
        def step() -> None:
            for user in some:
                model.unlearn_history(histories[user])

        return step

    def counted_ids(step: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            before = len(model._ids)
            step()
            new_ids.append(len(model._ids) - before)

        return run

    chunks = [events[at : at + 300] for at in range(3_000, 12_000, 300)]
    steps: list[Callable[[], None]] = []
    for n, chunk in enumerate(chunks):
        steps.append(counted_ids(learning(model, chunk, batched=n % 2 == 1)))
        if n % 5 == 2:
            steps.append(forget(users[n::7]))
    steps[4] = asserting(steps[4], writes, "prune")
    steps += [
        asserting(forget(users[::3]), writes, "clear"),  # items forgotten altogether
        asserting(lambda: model._pool._make_room(0), writes, "compact"),  # nothing changed
        lambda: model.add(["1", "2", "never-before-1"], "never-before-2", 3),
        learning(model, events[:2_000], batched=True),  # after the subtractions
        asserting(lambda: model._pool._make_room(10_000), writes, "compact"),
    ]
    largest = check_rounds(model, steps, recut_every=4)
    assert largest > 0 and sum(new_ids) > 0  # new items appeared after the bases
    assert writes["compact"] > 3 and writes["prune"] > 10


def test_changes_cost_what_changed(movielens: tuple[list[Event], History]) -> None:
    """A few events after a base: their changes are a small fraction of the whole."""
    events, _ = movielens
    model = CoOccurrence()
    learning(model, events[:10_000], batched=True)()
    base = model.to_snapshot()
    mark = model.mark()
    learning(model, events[10_000:10_050], batched=True)()
    changes = pickle.dumps(model.changes_since(mark))
    whole = pickle.dumps(model.to_snapshot())
    assert len(changes) * 50 < len(whole), (len(changes), len(whole))
    same(CoOccurrence.patched(base, pickle.loads(changes)), model.to_snapshot())
    assert model.changes_since(model.mark())["slots"].shape == (3, 0)  # nothing since


def test_changes_since_an_older_mark_patch_its_older_base(
    movielens: tuple[list[Event], History],
) -> None:
    events, _ = movielens
    model = CoOccurrence(max_neighbors=5, window=4)
    learning(model, events[:2_000], batched=True)()
    first, first_mark = model.to_snapshot(), model.mark()
    learning(model, events[2_000:3_000], batched=False)()
    second_mark = model.mark()
    learning(model, events[3_000:4_000], batched=True)()
    assert second_mark == first_mark + 1
    same(CoOccurrence.patched(first, model.changes_since(first_mark)), model.to_snapshot())


def test_a_loaded_model_is_at_generation_0_with_every_stamp_0(
    movielens: tuple[list[Event], History],
) -> None:
    events, _ = movielens
    model = CoOccurrence(max_neighbors=5, window=4)
    learning(model, events[:1_000], batched=True)()
    model.mark()
    learning(model, events[1_000:2_000], batched=True)()
    loaded = CoOccurrence.from_snapshot(model.to_snapshot())
    same(loaded.to_snapshot(), model.to_snapshot())  # the round trip
    pool = loaded._pool
    assert pool.generation == 0 and not pool.row_stamps.any()
    assert not pool.slot_stamps[: pool.end].any()
    base, mark = loaded.to_snapshot(), loaded.mark()
    assert mark == 0
    learning(loaded, events[2_000:2_200], batched=False)()
    same(CoOccurrence.patched(base, loaded.changes_since(mark)), loaded.to_snapshot())


def test_counts_past_32_bits_after_the_base_patch_to_64_bit_arrays() -> None:
    model = CoOccurrence()
    model.add(["a", "b"], "c")
    base, mark = model.to_snapshot(), model.mark()
    assert base["rows"].dtype == np.int32
    model.add(["a"], "b", 2**31)
    now = model.to_snapshot()
    assert now["rows"].dtype == np.int64
    same(CoOccurrence.patched(base, model.changes_since(mark)), now)


def test_an_event_longer_than_any_before_is_stamped_too() -> None:
    """A history longer than the compiled step's scratch makes it take a longer one, which
    carries the generation on."""
    model = CoOccurrence(max_neighbors=100, window=100)
    model.add(["a"], "b")
    base, mark = model.to_snapshot(), model.mark()
    model.add([str(n) for n in range(90)], "c")
    same(CoOccurrence.patched(base, model.changes_since(mark)), model.to_snapshot())


def test_the_recommender_stores_its_model_as_a_reference_to_a_base(
    movielens: tuple[list[Event], History],
) -> None:
    """Under `increments.writing` the snapshot holds the base's key and the changes, and
    under `increments.reading` it loads into the model it was taken of."""
    events, histories = movielens
    model = CoOccurrence()
    learning(model, events[:3_000], batched=True)()
    rec = CoocRecommender(model)
    base, mark = model.to_snapshot(), model.mark()
    learning(model, events[3_000:3_100], batched=False)()
    book = increments.Writing()
    book.references["0.CoOccurrence"] = increments.Reference("k", mark, 0, id(model))
    with increments.writing(book):
        data = rec.to_snapshot()
    assert data["cooc"]["base"] == "k" and "rows" not in data["cooc"]
    with increments.reading({"k": {"mark": mark, "whole": base}}):
        loaded = CoocRecommender.from_snapshot(pickle.loads(pickle.dumps(data)))
    same(loaded.cooc.to_snapshot(), model.to_snapshot())
    history = histories[sorted(histories)[0]]
    assert loaded.cooc.recommend(history, 20) == model.recommend(history, 20)
