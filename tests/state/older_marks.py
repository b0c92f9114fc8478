"""A check of `tailor.state.increments` beyond `check_rounds`: changes since an *older* mark, one
taken before newer ones (a replica's snapshot still names the old base while a new one is
being cut), must be answered too, from what the marks in between stamped."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any

from tailor.state.increments import Incremental
from tests.state.increment_support import same


def check_older_marks(
    component: Incremental, steps: list[Callable[[], None]], keep: int = 4
) -> None:
    """Mark before every step, keep the last `keep` (base, mark) pairs, and after each step
    check that every kept base patched with the changes since its mark is `to_snapshot()`
    (through pickle)."""
    cls = type(component)
    kept: list[tuple[Any, int]] = []
    for i, step in enumerate(steps, 1):
        kept = [*kept, (pickle.loads(pickle.dumps(component.to_snapshot())), component.mark())]
        kept = kept[-keep:]
        step()
        now = component.to_snapshot()
        for base, mark in kept:
            blob = pickle.dumps(component.changes_since(mark), protocol=pickle.HIGHEST_PROTOCOL)
            same(cls.patched(base, pickle.loads(blob)), now, f"step {i}, mark {mark}")
