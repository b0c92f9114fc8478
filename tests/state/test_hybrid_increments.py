"""The hybrid's parts written as bases plus changes (`tailor.state.increments.writing`) and read
back through their bases (`reading`): the restored hybrid is the hybrid, and a component that
is itself incremental (`CategoryPopular`) keeps its kind for `restore`."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import pytest

from tailor.flows.evaluate import load_interactions
from tailor.state import increments
from tailor.state.recs.base import Interaction
from tailor.state.recs.group_trending import CategoryPopular
from tailor.state.recs.hybrid import Hybrid
from tailor.state.recs.settings import build, restore
from tests.settings_support import rec_settings
from tests.state.increment_support import same


@pytest.fixture(scope="module")
def movielens(data_dir: Path) -> list[Interaction]:
    return load_interactions([data_dir / "movielens-latest-small" / "ratings.csv"], "movielens")


def learned(hybrid: Hybrid, events: list[Interaction]) -> None:
    history: dict[str, list[str]] = {}
    for event in events:
        mine = history.setdefault(event.user, [])
        hybrid.learn_one(event, mine[-20:])
        mine.append(event.item)


def stored(data: Any) -> Any:
    return pickle.loads(pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL))


def test_the_hybrid_writes_its_parts_as_bases_plus_changes(movielens: list[Interaction]) -> None:
    hybrid = build("hybrid", rec_settings())
    assert isinstance(hybrid, Hybrid)
    learned(hybrid, movielens[:4000])
    whole = hybrid.to_snapshot()  # outside a replica's writing: every part whole, as before
    category = hybrid.components["category"]
    assert isinstance(category, CategoryPopular)
    same(whole["components"]["category"], category.to_snapshot())

    bookkeeping = increments.Writing()
    with increments.writing(bookkeeping):
        hybrid.to_snapshot()  # no bases yet: every part whole and pending
    kinds = sorted(type(part).__name__ for part in bookkeeping.pending.values())
    assert {"CategoryPopular", "FISM", "Trending"} <= set(kinds) and kinds.count("Trending") == 2
    bases = {}
    for name, part in bookkeeping.pending.items():
        base, mark = stored(part.to_snapshot()), part.mark()
        bases[name] = {"mark": mark, "whole": base}
        size = len(pickle.dumps(base, protocol=pickle.HIGHEST_PROTOCOL))
        bookkeeping.references[name] = increments.Reference(name, mark, size, id(part))
    learned(hybrid, movielens[4000:6000])
    with increments.writing(bookkeeping):
        data = stored(hybrid.to_snapshot())
    written = data["components"]["category"]
    assert written["kind"] == "CategoryPopular" and "incremental" in written
    parts = bookkeeping.pending
    sizes = {
        name: (
            len(pickle.dumps(parts[name].changes_since(ref.mark), pickle.HIGHEST_PROTOCOL)),
            len(pickle.dumps(parts[name].to_snapshot(), pickle.HIGHEST_PROTOCOL)),
        )
        for name, ref in bookkeeping.references.items()
    }
    # a trending whose every row changed sends them all (as much as whole); the rest less
    assert all(0 < changed < 1.01 * whole for changed, whole in sizes.values()), sizes
    assert all(sizes[name][0] < 0.95 * sizes[name][1] for name in sizes if "Trending" not in name)
    with increments.reading(bases):
        back = restore(data)
    assert isinstance(back, Hybrid)
    same(back.to_snapshot(), hybrid.to_snapshot())
    learned(back, movielens[6000:7000])
    learned(hybrid, movielens[6000:7000])
    same(back.to_snapshot(), hybrid.to_snapshot())
