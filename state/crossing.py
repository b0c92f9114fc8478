"""Cheap pickling for the frozen slots records that cross Bytewax processes.

In cluster mode Bytewax pickles every item that moves to another process (and every state
snapshot). For a frozen slots dataclass, Python 3.11's `dataclasses` adds `__getstate__` and
`__setstate__` (`_dataclass_getstate` / `_dataclass_setstate`): each call walks
`dataclasses.fields(self)` in Python, reads the values one `getattr` at a time, and on load
sets them one `object.__setattr__` at a time through a Python loop, after a `NEWOBJ` that
builds an empty instance. That cost ~4x a plain dataclass and ~9x a tuple per crossing
(`benchmarks/prototypes/exchange.py --types`, `benchmarks/crossing_pickle.py`).

`crossing` gives a record a `__reduce__` returning ``(cls, values)``: the values read by one
C-level `operator.attrgetter`, the load one call of the generated `__init__`. The type keeps
its API (frozen, slots, typed, same constructor). The `__setstate__` that `dataclass` added
stays, so a pickle written the other way (``NEWOBJ`` + a state list) still loads; recovery
snapshots no longer hold records (`tailor.state.snapshots`). The records have no `__post_init__`:
loading re-runs `__init__`, which must stay a plain assignment of fields for this to be exact.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from operator import attrgetter
from typing import Any, TypeVar

T = TypeVar("T", bound=type)


def values_getter(cls: type) -> Callable[[Any], tuple[Any, ...]]:
    """A function returning an instance's field values in `__init__` order, as one tuple."""
    names = tuple(f.name for f in fields(cls))
    if len(names) == 1:
        (name,) = names
        return lambda obj: (getattr(obj, name),)
    return attrgetter(*names)


def crossing(cls: T) -> T:
    """Make a frozen slots dataclass pickle as ``cls(*values)`` (apply above `@dataclass`).

    Every field must be an `__init__` argument, in order, with no `__post_init__`.
    """
    if getattr(cls, "__post_init__", None) is not None:
        raise TypeError(f"{cls.__name__}: a __post_init__ would run again on every load")
    if any(not f.init for f in fields(cls)):
        raise TypeError(f"{cls.__name__}: every field must be an __init__ argument")
    get = values_getter(cls)

    def __reduce__(self: Any) -> tuple[type, tuple[Any, ...]]:
        return (cls, get(self))

    __reduce__.__qualname__ = f"{cls.__qualname__}.__reduce__"
    __reduce__.__doc__ = "Pickle as the constructor call (`tailor.state.crossing`)."
    cls.__reduce__ = __reduce__  # type: ignore[assignment]
    return cls
