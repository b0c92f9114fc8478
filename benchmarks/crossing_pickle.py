"""What pickling one of Tailor's records costs, as it crosses Bytewax processes, by pickle shape.

    flock /work/wt/measure.lock python -m benchmarks.crossing_pickle [--events 5000] [--json]

Records are real: MovieLens latest-small's first `--events` events go through validation and
the per-user state (`UserState`) as the worker does it; the samples are the last event, its
`Accepted`, a light and a full `UserUpdate` (20 history items, features, categories), a
`UserOutput` with 10 recommendations (built by `tailor.operators.outputs`), a `RawRecord`, a
`Progress`, a `DeadLetter`, and a `Stamp`. For each, `pickle.loads(pickle.dumps(x))` (the
default protocol, as Bytewax does) is timed under each shape, all in one run, by swapping the
pickling methods of the real classes:

- `today`: what `@dataclass(frozen=True, slots=True)` gives (`_dataclass_getstate` /
  `_dataclass_setstate`: `fields()` walked in Python on both sides, a `NEWOBJ` plus a
  `setattr` loop on load);
- `get/setstate`: the same pickle shape with a C `attrgetter` and a loop over cached names;
- `rebuild`: `__reduce__` to a module function doing `object.__new__` and the `setattr` loop;
- `reduce`: `__reduce__` to ``(cls, values)``, loaded by `__init__` (`tailor.state.crossing`, the
  choice);
- `no slots`: the same records as frozen dataclasses without slots (clones of the classes),
  which pickle a `__dict__` in C, for reference (a `__dict__` per record is what it costs);
- `tuple`: `dataclasses.astuple` of the record, for reference (what a tuple would cost).

Reported: µs per round trip (best of `--repeats`), ratio to `today`, and pickled bytes.
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import astuple, field, fields, make_dataclass
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.scale_io import movielens_events
from tailor.flows.config import load_config
from tailor.flows.worker import user_state_params
from tailor.operators import records
from tailor.operators.outputs import user_output
from tailor.operators.user_state import _full_update
from tailor.state.crossing import values_getter
from tailor.state.profile.event import DEFAULT_EVENT_TYPES, Event, event_from_dict
from tailor.state.segments.rules import RuleSet

#: Every record type `tailor.state.crossing` applies to (the records that cross processes).
CROSSING: tuple[type, ...] = (
    records.RawRecord,
    records.Accepted,
    records.Progress,
    records.DeadLetter,
    records.InputDeletion,
    records.UserUpdate,
    records.UserOutput,
    records.Forget,
    records.Block,
    records.Erasure,
    records.Stamp,
    records.Recommendation,
    records.QualityReport,
    records.SegmentInfo,
    records.SegmentModel,
    Event,
)
SHAPES = ("today", "get/setstate", "rebuild", "reduce", "no slots", "tuple")


def samples(n_events: int) -> dict[str, Any]:
    """Typical records, made from real events by the worker's own code."""
    params = user_state_params(load_config(env={}))
    states: dict[str, Any] = {}
    stamp = records.Stamp("tailor:events:0", 41, 1000)
    latest: dict[str, tuple[bytes, Event]] = {}
    for raw in movielens_events()[:n_events]:
        event = event_from_dict(raw, DEFAULT_EVENT_TYPES)
        assert isinstance(event, Event)
        states.setdefault(event.user_id, params.new_state()).update(event)
        latest[event.user_id] = (orjson.dumps(raw), event)
    user = max(states, key=lambda u: states[u].version)  # a user with a full history
    state = states[user]
    payload, last = latest[user]
    full = _full_update(state, last, 1.7e9, stamp)
    light = records.UserUpdate(user, state.version, last, 1.7e9, state.history, stamp=stamp)
    recs = tuple(
        records.Recommendation(f"{i}", round(1 / (i + 1), 6), "hybrid", "because you watched")
        for i in range(10)
    )
    drafted = records.Drafted(full, "a", recs, "cluster:3", "Fans", None, False)
    output = user_output(drafted, RuleSet({}, ()), [(full.read_at, full.event.ts)])
    return {
        "Event": last,
        "Accepted": records.Accepted(last, 1.7e9, stamp, "tailor:events:0", "1700000000000-0"),
        "UserUpdate (light)": light,
        "UserUpdate (full)": full,
        "UserOutput (10 recs)": output,
        "ForUser (draft, 10 recs)": records.ForUser(
            user, ((1.7e9, last.ts),), ((0, "i1", 7),), drafted, 0
        ),
        "RawRecord": records.RawRecord(payload, "tailor:events:0", "1700000000000-0", 1.7e9, stamp),
        "Progress": records.Progress(stamp, 1.7e9),
        "DeadLetter": records.DeadLetter("late", "301s behind", payload, "o", "1-0", stamp),
        "Stamp": stamp,
    }


def _unslotted(cls: type) -> type:
    """A frozen dataclass like `cls` without slots, importable from this module."""
    spec = [
        (f.name, f.type, field(default=f.default, default_factory=f.default_factory))
        for f in fields(cls)
    ]
    clone = make_dataclass(f"NoSlots{cls.__name__}", spec, frozen=True)
    clone.__module__ = __name__
    globals()[clone.__name__] = clone
    return clone


def no_slots(value: Any, clones: dict[type, type]) -> Any:
    """`value` with every record in it (nested, in tuples and lists) made a `_unslotted` clone."""
    if type(value) in clones:
        return clones[type(value)](
            *(no_slots(v, clones) for v in values_getter(type(value))(value))
        )
    if isinstance(value, tuple | list):
        return type(value)(no_slots(v, clones) for v in value)
    return value


def _rebuild(cls: type, values: tuple[Any, ...]) -> Any:
    """`object.__new__` plus one `object.__setattr__` per field (the `rebuild` shape)."""
    obj = object.__new__(cls)
    for name, value in zip(cls.__match_args__, values, strict=True):  # type: ignore[attr-defined]
        object.__setattr__(obj, name, value)
    return obj


def _methods(shape: str, cls: type) -> dict[str, Any]:
    """The pickling methods of `cls` under `shape` ({} for the dataclass defaults)."""
    get = values_getter(cls)
    names = tuple(f.name for f in fields(cls))
    if shape == "get/setstate":

        def setstate(self: Any, state: Any) -> None:
            for name, value in zip(names, state, strict=False):
                object.__setattr__(self, name, value)

        return {"__getstate__": lambda self: get(self), "__setstate__": setstate}
    if shape == "rebuild":
        return {"__reduce__": lambda self: (_rebuild, (cls, get(self)))}
    if shape == "reduce":
        return {"__reduce__": lambda self: (cls, get(self))}
    return {}


@contextmanager
def shaped(shape: str) -> Iterator[None]:
    """The real classes pickling under `shape`; the originals are put back afterwards."""
    saved = {
        cls: {
            k: cls.__dict__[k]
            for k in ("__reduce__", "__getstate__", "__setstate__")
            if k in cls.__dict__
        }
        for cls in CROSSING
    }
    try:
        for cls in CROSSING:
            cls.__dict__.get("__reduce__") and delattr(cls, "__reduce__")
            for name, method in _methods(shape, cls).items():
                setattr(cls, name, method)
        yield
    finally:
        for cls, methods in saved.items():
            for name in ("__reduce__", "__getstate__", "__setstate__"):
                if name in cls.__dict__:
                    delattr(cls, name)
            for name, method in methods.items():
                setattr(cls, name, method)


_methods_shapes = ("today", "get/setstate", "rebuild", "reduce")


def _target(shape: str, obj: Any, clones: dict[type, type]) -> Any:
    """What is pickled under `shape`: the record, its unslotted clone, or its tuple."""
    if shape == "tuple":
        return astuple(obj)
    return no_slots(obj, clones) if shape == "no slots" else obj


def round_trip_us(obj: Any, loops: int, repeats: int) -> float:
    """Best µs per `loads(dumps(obj))` over `repeats` runs of `loops`."""
    dumps, loads = pickle.dumps, pickle.loads
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(loops):
            loads(dumps(obj))
        best = min(best, time.perf_counter() - start)
    return best / loops * 1e6


def measure(found: dict[str, Any], loops: int, repeats: int) -> dict[str, dict[str, Any]]:
    """µs and bytes per sample and shape; every shape must round-trip equal."""
    table: dict[str, dict[str, Any]] = {name: {} for name in found}
    clones = {cls: _unslotted(cls) for cls in CROSSING}
    for shape in SHAPES:
        with shaped(shape if shape in _methods_shapes else "today"):
            for name, obj in found.items():
                target = _target(shape, obj, clones)
                assert pickle.loads(pickle.dumps(target)) == target, (shape, name)
                us = round_trip_us(target, loops, repeats)
                table[name][shape] = {"us": round(us, 2), "bytes": len(pickle.dumps(target))}
    return table


def print_table(table: dict[str, dict[str, Any]]) -> None:
    """Markdown: µs per round trip, ratio to today, bytes."""
    print("| record | " + " | ".join(SHAPES) + " | bytes today / reduce |")
    print("|---" * (len(SHAPES) + 2) + "|")
    for name, row in table.items():
        base = row["today"]["us"]
        cells = [
            f"{row[s]['us']:.2f}" + ("" if s == "today" else f" ({row[s]['us'] / base:.2f}x)")
            for s in SHAPES
        ]
        size = f"{row['today']['bytes']} / {row['reduce']['bytes']}"
        print(f"| {name} | " + " | ".join(cells) + f" | {size} |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--loops", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    table = measure(samples(args.events), args.loops, args.repeats)
    print(json.dumps(table, indent=1) if args.json else "", end="")
    if not args.json:
        print_table(table)


if __name__ == "__main__":
    main()
