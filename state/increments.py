"""Snapshots that cost what changed: a large model is stored as a base plus its changes.

Bytewax snapshots a key whole at every epoch end in which it was touched, so a replica of the
models wrote its whole co-occurrence, FISM item table and popularity every epoch, however
little of it the epoch changed (docs/decisions/0009-model-bases.md). An `Incremental` component
instead has a *base* (its whole `to_snapshot`, taken now and then and stored under a key of
its own, which Bytewax then leaves alone) and, in each epoch's snapshot of the replica, only
the *changes* since that base (docs/design/scale-out.md, section 6 and step 6).

The contract, for any learning between the two calls::

    whole = c.to_snapshot(); mark = c.mark()
    ... learning, unlearning ...
    c.patched(whole, c.changes_since(mark)) == c.to_snapshot()   (arrays equal, lists equal)

`mark()` returns the component's current generation and starts the next one: whatever the
component writes afterwards is stamped with the newer generation, and `changes_since(mark)`
reports everything stamped after `mark` (and whatever small state it keeps whole). Changes
must cost what changed: rows or slots stamped, ids appended since (append-only id lists
send their tail), never the whole model again.

Parents do not know about bases: in their `to_snapshot` they call `part(child)` where they
called `child.to_snapshot()`, and an incremental class's `from_snapshot` starts with
`data = whole(data, cls)`. Outside a `Writing` / `reading` context both are the identity
(`part` is the child's whole snapshot), so every component still pickles, copies and tests as
before; the replica step (`tailor.operators.models`) opens the contexts around its snapshot and its
resume.

>>> class Counter:
...     def __init__(self): self.n, self.gen, self.stamp = 0, 0, 0
...     def learn(self): self.n += 1; self.stamp = self.gen
...     def to_snapshot(self): return {"n": self.n}
...     def mark(self): self.gen += 1; return self.gen - 1
...     def changes_since(self, mark): return {"n": self.n} if self.stamp > mark else {}
...     @classmethod
...     def patched(cls, whole, changes): return {**whole, **changes}
>>> c = Counter(); base = c.to_snapshot(); m = c.mark(); c.learn()
>>> Counter.patched(base, c.changes_since(m)) == c.to_snapshot()
True
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = [
    "Incremental",
    "Reference",
    "Writing",
    "nbytes",
    "part",
    "reading",
    "whole",
    "writing",
]


@runtime_checkable
class Incremental(Protocol):
    """A component whose snapshot can be a base plus what changed since (module docstring)."""

    def to_snapshot(self) -> dict[str, Any]: ...

    def mark(self) -> int: ...

    def changes_since(self, mark: int) -> dict[str, Any]: ...

    @classmethod
    def patched(cls, whole: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]: ...


@dataclass
class Reference:
    """Where a part's base is and what it was when taken (what `Writing` remembers)."""

    key: str  # the base's key in the bases step
    mark: int  # the component's generation when the base was taken
    size: int  # the base's pickled bytes
    component: int  # id() of the component it was taken of (a replaced model needs a new one)
    changed: int = 0  # bytes of the changes in the last snapshot (about: `nbytes`)


@dataclass
class Writing:
    """The base bookkeeping of one replica, used while its snapshot is written.

    `part` is called for each incremental component in traversal order, which names it
    (`"<n>.<class>"`, stable for one configuration). A part with a base is written as a
    reference to it with its changes; a part without one is written whole and remembered in
    `pending`, so the replica can take its base during the next epoch (`tailor.operators.models`).
    """

    references: dict[str, Reference] = field(default_factory=dict)
    pending: dict[str, Incremental] = field(default_factory=dict)
    _seen: int = 0

    def part(self, component: Incremental) -> dict[str, Any]:
        name = f"{self._seen}.{type(component).__name__}"
        self._seen += 1
        ref = self.references.get(name)
        if ref is None or ref.component != id(component):
            self.references.pop(name, None)
            self.pending[name] = component
            return component.to_snapshot()
        changes = component.changes_since(ref.mark)
        ref.changed = nbytes(changes)
        self.pending[name] = component  # known, so it can be cut again when it has grown
        return {"incremental": name, "base": ref.key, "mark": ref.mark, "changes": changes}

    def restart(self) -> None:
        """Before a snapshot: traversal names count from 0 again."""
        self._seen = 0


_WRITING: ContextVar[Writing | None] = ContextVar("tailor_increments_writing", default=None)
_READING: ContextVar[Mapping[str, Mapping[str, Any]] | None] = ContextVar(
    "tailor_increments_reading", default=None
)


@contextmanager
def writing(bookkeeping: Writing) -> Iterator[Writing]:
    """Within: `part` writes references to bases where `bookkeeping` has them."""
    bookkeeping.restart()
    token = _WRITING.set(bookkeeping)
    try:
        yield bookkeeping
    finally:
        _WRITING.reset(token)


@contextmanager
def reading(bases: Mapping[str, Mapping[str, Any]]) -> Iterator[None]:
    """Within: `whole` resolves references with `bases` (base key → the base's data:
    `{"mark": m, "whole": whole snapshot}`)."""
    token = _READING.set(bases)
    try:
        yield
    finally:
        _READING.reset(token)


def part(component: Any) -> dict[str, Any]:
    """What a parent stores for `component`: its whole snapshot, or (while a replica writes
    its snapshot) a reference to its base with the changes since."""
    bookkeeping = _WRITING.get()
    if bookkeeping is None or not isinstance(component, Incremental):
        return component.to_snapshot()
    return bookkeeping.part(component)


def whole(data: Mapping[str, Any], cls: type[Incremental]) -> Mapping[str, Any]:
    """`data` as `cls.to_snapshot()` gave it: a reference is resolved against its base."""
    if "incremental" not in data:
        return data
    bases = _READING.get()
    if bases is None or data["base"] not in bases:
        raise LookupError(f"the base {data['base']!r} of a snapshot is missing")
    base = bases[data["base"]]
    if base["mark"] != data["mark"]:
        raise LookupError(
            f"the base {data['base']!r} is of generation {base['mark']}, the snapshot "
            f"needs {data['mark']}"
        )
    return cls.patched(base["whole"], data["changes"])


def nbytes(data: Any) -> int:
    """About what `data` pickles to, without pickling it (a snapshot pickles it once, in
    its envelope) and without walking long lists: arrays by their bytes, a list of plain
    items at 16 bytes an item, a long mapping as long as its first entry times its length,
    strings by their length, other items 8.

    >>> nbytes({"ids": ["ab", "c"], "rows": np.zeros(4, np.int32)})
    57
    """
    if isinstance(data, np.ndarray):
        return int(data.nbytes)
    if isinstance(data, str | bytes):
        return len(data) + 1
    if isinstance(data, Mapping):
        if len(data) > LONG:
            key, value = next(iter(data.items()))
            return len(data) * (nbytes(key) + nbytes(value))
        return sum(nbytes(key) + nbytes(value) for key, value in data.items())
    if isinstance(data, list | tuple):
        nested = bool(data) and isinstance(data[0], Mapping | list | tuple | np.ndarray)
        return sum(nbytes(item) for item in data) if nested else 16 * len(data)
    return 8


#: Mappings longer than this are sized from their first entry (`nbytes`).
LONG = 64
