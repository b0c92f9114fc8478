"""Snapshot bytes and time before and after the snapshot format, side by side in one run.

    flock /work/wt/measure.lock python -m benchmarks.snapshot_format [--catalogue 100000] [--json]

*Before* is what the previous release stored: `pickle.dumps` of the state objects (the
models step's whole `ModelsState`, each user's `UserState`). *After* is the envelope of
plain data (`tailor.state.snapshots`, the components' `to_snapshot`), what `ModelsLogic.snapshot`
and `UserStateLogic.snapshot` return now. Each is timed `--repeats` times, alternating, with
the cyclic GC on as in the worker (a full collection set off by many small allocations is
part of the pause); the median is reported, and loading back (`pickle.loads` before,
`decode` + `from_snapshot` after).

The models state is MovieLens latest-small replayed through the per-user state and the
models step as the worker does it (every update full), and with `--catalogue N` also the
catalogue benchmark's synthetic stream of N items through the recommenders
(`benchmarks.catalogue_stream`; its segment half stays fresh). The per-user figure is the
sum over MovieLens' 610 users (a snapshot per changed user at each epoch end).
"""

from __future__ import annotations

import argparse
import json
import pickle
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.catalogue_stream import CatalogueSpec, Feeder, synthesise
from benchmarks.scale_io import movielens_events
from tailor.flows.config import load_config
from tailor.flows.worker import model_params, user_state_params
from tailor.operators.models import ModelsLogic, ModelsState
from tailor.operators.records import UserUpdate
from tailor.operators.user_state import _full_update
from tailor.state import snapshots
from tailor.state.profile.event import DEFAULT_EVENT_TYPES, Event, event_from_dict
from tailor.state.profile.user import UserState

BATCH = 500


def movielens_state() -> tuple[ModelsLogic, dict[str, UserState]]:
    """The models step and every user's state after MovieLens, in batches of `BATCH`."""
    config = load_config(env={})
    logic = ModelsLogic(model_params(config))
    users: dict[str, UserState] = {}
    params = user_state_params(config)
    batch: list[UserUpdate] = []
    for raw in movielens_events():
        event = event_from_dict(raw, DEFAULT_EVENT_TYPES)
        assert isinstance(event, Event)
        state = users.setdefault(event.user_id, params.new_state())
        state.update(event)
        batch.append(_full_update(state, event, event.ts, None))
        if len(batch) == BATCH:
            logic.on_batch(batch)
            batch = []
    logic.on_batch(batch)
    logic.on_eof()
    return logic, users


def catalogue_state(items: int, events: int) -> ModelsLogic:
    config = load_config(env={})
    params = model_params(config)
    logic = ModelsLogic(params)
    state = config.state
    weights = dict(params.recs.event_weights)
    spec = CatalogueSpec(items=items)
    feeder = Feeder(synthesise(spec, events), weights, state.history_len, state.max_purchased)
    feeder.run(logic.state.recs, 0, events, sample_every=events)
    return logic


def timed(make: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    out = make()
    return time.perf_counter() - started, out


def side_by_side(
    dump: dict[str, Callable[[], bytes]], load: dict[str, Callable[[bytes], Any]], repeats: int
) -> dict[str, dict[str, float]]:
    """Median ms to dump and to load, and bytes, per way, the ways alternating."""
    took: dict[str, list[float]] = {way: [] for way in dump}
    loaded: dict[str, list[float]] = {way: [] for way in dump}
    size: dict[str, int] = {}
    for _ in range(repeats):
        for way, make in dump.items():
            seconds, blob = timed(make)
            took[way].append(seconds)
            size[way] = len(blob)
            seconds, _ = timed(lambda: load[way](blob))  # noqa: B023 - called at once
            loaded[way].append(seconds)
    return {
        way: {
            "bytes": size[way],
            "dump_ms": statistics.median(took[way]) * 1e3,
            "load_ms": statistics.median(loaded[way]) * 1e3,
        }
        for way in dump
    }


def models_ways(logic: ModelsLogic) -> tuple[dict[str, Any], dict[str, Any]]:
    def bare() -> bytes:
        return pickle.dumps(logic.state, protocol=pickle.HIGHEST_PROTOCOL)

    def envelope(blob: bytes) -> ModelsState:
        return ModelsState.from_snapshot(snapshots.decode(blob, "models"))

    return {"before": bare, "after": logic.snapshot}, {"before": pickle.loads, "after": envelope}


def users_ways(users: dict[str, UserState]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Every user's snapshot, concatenated with a length each (the sum of per-user costs)."""
    settings = user_state_params(load_config(env={})).state_settings()

    def each(dump: Callable[[UserState], bytes]) -> Callable[[], bytes]:
        def run() -> bytes:
            return pickle.dumps([dump(state) for state in users.values()])

        return run

    def bare(state: UserState) -> bytes:
        return pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)

    def envelope(state: UserState) -> bytes:
        return snapshots.encode("user", state.to_snapshot())

    def load_bare(blob: bytes) -> list[Any]:
        return [pickle.loads(one) for one in pickle.loads(blob)]

    def load_envelope(blob: bytes) -> list[Any]:
        return [
            UserState.from_snapshot(snapshots.decode(one, "user"), **settings)
            for one in pickle.loads(blob)
        ]

    return (
        {"before": each(bare), "after": each(envelope)},
        {"before": load_bare, "after": load_envelope},
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--catalogue", type=int, default=0, help="items of a synthetic catalogue")
    parser.add_argument("--catalogue-events", type=int, default=300_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    logic, users = movielens_state()
    results = {
        "movielens models": side_by_side(*models_ways(logic), args.repeats),
        f"movielens users ({len(users)})": side_by_side(*users_ways(users), args.repeats),
    }
    if args.catalogue:
        big = catalogue_state(args.catalogue, args.catalogue_events)
        name = f"catalogue {args.catalogue:,} items models"
        results[name] = side_by_side(*models_ways(big), args.repeats)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print("| state | MB before | MB after | dump ms before | after | load ms before | after |")
    print("|---|---|---|---|---|---|---|")
    for name, r in results.items():
        b, a = r["before"], r["after"]
        print(
            f"| {name} | {b['bytes'] / 1e6:.2f} | {a['bytes'] / 1e6:.2f} | "
            f"{b['dump_ms']:.1f} | {a['dump_ms']:.1f} | {b['load_ms']:.1f} | {a['load_ms']:.1f} |"
        )


if __name__ == "__main__":
    main()
