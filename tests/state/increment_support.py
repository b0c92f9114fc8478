"""Checks for `tailor.state.increments`: a base patched with the changes equals the whole
snapshot."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any

import numpy as np

from tailor.state.increments import Incremental


def same(a: Any, b: Any, path: str = "") -> None:
    """Nested plain data equal, numpy arrays by value and dtype (assertion names the path)."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        assert isinstance(a, np.ndarray) and isinstance(b, np.ndarray), path
        assert a.dtype == b.dtype and a.shape == b.shape, (path, a.dtype, b.dtype, a.shape, b.shape)
        assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), path
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), (path, set(a) ^ set(b))
        for key in a:
            same(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, list | tuple):
        assert type(a) is type(b) and len(a) == len(b), (path, type(a), type(b))
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            same(x, y, f"{path}[{i}]")
    else:
        assert a == b, (path, a, b)


def check_rounds(
    component: Incremental, steps: list[Callable[[], None]], recut_every: int = 3
) -> int:
    """Run `steps` (learning, unlearning ...) and after each one check that the last base
    patched with `changes_since` equals `to_snapshot()`, taking a new base every
    `recut_every` steps; the bases and changes go through pickle, as in a store. Returns
    the largest changes' pickled bytes (for a test that they cost what changed)."""
    cls = type(component)
    base = pickle.loads(pickle.dumps(component.to_snapshot()))
    mark = component.mark()
    largest = 0
    for i, step in enumerate(steps, 1):
        step()
        blob = pickle.dumps(component.changes_since(mark), protocol=pickle.HIGHEST_PROTOCOL)
        largest = max(largest, len(blob))
        same(cls.patched(base, pickle.loads(blob)), component.to_snapshot(), f"step {i}")
        if i % recut_every == 0:
            base = pickle.loads(pickle.dumps(component.to_snapshot()))
            mark = component.mark()
    return largest
