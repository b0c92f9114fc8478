"""Co-occurrence with packed, compiled neighbours against the per-row objects it replaced.

`python -m benchmarks.cooc_store [--data ratings.csv] [--events N] [--batch 100]` replays a
dataset (MovieLens latest-small by default) through both models with the default `[recs]`
co-occurrence settings, each user's history kept as the user step keeps it (distinct, 20),
and measures in the same run, old (`tests/state/cooc_reference.py`) then new:

* `learn_one`: µs per event, the two models learning each event one after the other (each
  first half the time);
* `learn_many`: µs per event, batches of `--batch` events (what a replica does with another
  worker's batch; the old model has no batch step, so `learn_batch` loops `learn_one`);
* `recommend`: µs per top-10 from each user's final history, their items excluded;
* `to_snapshot`: ms (median of 7) for the whole model;
* memory and GC: the bytes each model holds and the objects the collector tracks in it (a
  `gc.get_referents` walk), and the ms of a full `gc.collect()` with only that model alive
  (everything else frozen out of the collections, `gc.freeze`), less the same without it.

Prints a Markdown table with the ratio new / old.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tailor.flows.config import shipped
from tailor.flows.evaluate import load_interactions, push_history, settings_of
from tailor.state.recs.base import Interaction
from tailor.state.recs.cooc_counts import CoOccurrence
from tests.state.cooc_reference import CoOccurrence as Reference

DEFAULT_DATA = Path("../shared/data/movielens-latest-small/ratings.csv")
Model = CoOccurrence | Reference


def _fresh() -> tuple[Reference, CoOccurrence]:
    s = settings_of(shipped())
    args = (s.cooc_max_neighbors, s.cooc_window)
    return Reference(*args, alpha=s.cooc_alpha), CoOccurrence(*args, alpha=s.cooc_alpha)


def _events(
    interactions: list[Interaction], history_len: int
) -> tuple[list[tuple[tuple[str, ...], str, int]], dict[str, list[str]]]:
    """(previous items, item, weight) per interaction, and each user's final history."""
    histories: dict[str, list[str]] = {}
    out = []
    for event in interactions:
        history = histories.setdefault(event.user, [])
        out.append((tuple(history), event.item, event.weight))
        push_history(history, event.item, history_len)
    return out, histories


def _held(model: Model) -> tuple[int, int]:
    """(GC-tracked objects, bytes) reachable from the model: what a full collection walks
    for it, and its memory (`sys.getsizeof` of each object; an array owning its data counts
    it, a view of another array only its header)."""
    seen = {id(model)}
    stack: list[object] = [model]
    tracked = size = 0
    while stack:
        obj = stack.pop()
        tracked += gc.is_tracked(obj)
        size += sys.getsizeof(obj)
        for child in gc.get_referents(obj):
            if id(child) not in seen and not isinstance(child, type):
                seen.add(id(child))
                stack.append(child)
    return tracked, size


def _collect_ms() -> float:
    """Median ms of a full collection."""
    samples = []
    for _ in range(5):
        started = time.perf_counter()
        gc.collect()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1e3


def _median_ms(call: Callable[[], object], repeats: int = 7) -> float:
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1e3


def measure(data: Path, events: int, batch: int, history_len: int) -> dict[str, list[float]]:
    """Row name → [old, new]."""
    learned, histories = _events(load_interactions([data])[:events], history_len)
    old, new = _fresh()
    new.add([], "warm-up")  # the compiled step loads from its cache once
    old.add([], "warm-up")
    spent = [0.0, 0.0]
    for n, (previous, item, weight) in enumerate(learned):
        for side in (0, 1) if n % 2 else (1, 0):  # each first half the time
            started = time.perf_counter()
            (old, new)[side].add(previous, item, weight)
            spent[side] += time.perf_counter() - started
    result = {"learn_one µs": [t / len(learned) * 1e6 for t in spent]}

    batched = _fresh()
    spent = [0.0, 0.0]
    for start in range(0, len(learned), batch):
        chunk = learned[start : start + batch]
        previous, items, weights = ([e[n] for e in chunk] for n in range(3))
        for side in (0, 1) if start % (2 * batch) else (1, 0):
            started = time.perf_counter()
            if side:
                batched[1].add_many(previous, items, weights)
            else:  # the old model has no batch step: `learn_batch` loops `learn_one`
                for event in chunk:
                    batched[0].add(*event)
            spent[side] += time.perf_counter() - started
    result[f"learn_many µs per event (batches of {batch})"] = [
        t / len(learned) * 1e6 for t in spent
    ]
    assert batched[1].to_snapshot()["pairs"].tolist() == new.to_snapshot()["pairs"].tolist()
    del batched

    users = sorted(histories)
    spent = [0.0, 0.0]
    for user in users:
        history, seen = histories[user], set(histories[user])
        for side, model in enumerate((old, new)):
            started = time.perf_counter()
            model.recommend(history, 10, seen)
            spent[side] += time.perf_counter() - started
    result["recommend µs (top 10)"] = [t / len(users) * 1e6 for t in spent]
    result["to_snapshot ms"] = [_median_ms(m.to_snapshot) for m in (old, new)]
    held = [_held(m) for m in (old, new)]
    result["GC-tracked objects in the model"] = [float(n) for n, _ in held]
    result["MB the model holds"] = [size / 1e6 for _, size in held]

    snapshots = {Reference: old.to_snapshot(), CoOccurrence: new.to_snapshot()}
    del old, new
    gc.collect()
    gc.freeze()  # the replay's data out of the collections: what is left is the model's
    samples: dict[object, list[float]] = {kind: [] for kind in (None, *snapshots)}
    for _ in range(5):  # rounds, so drift hits each alike; only one model exists at a time
        for kind in samples:
            model = None if kind is None else kind.from_snapshot(snapshots[kind])
            gc.collect()
            samples[kind].append(_collect_ms())
            del model
    gc.unfreeze()
    empty = statistics.median(samples[None])
    result["full gc.collect() ms (the model's share)"] = [
        statistics.median(samples[kind]) - empty for kind in snapshots
    ]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--events", type=int, default=100_836)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--history-len", type=int, default=20)
    args = parser.parse_args()
    result = measure(args.data, args.events, args.batch, args.history_len)
    print("| measure | per-row objects (old) | packed, compiled (new) | new / old |")
    print("|---|---|---|---|")
    for name, (before, after) in result.items():
        print(f"| {name} | {before:,.1f} | {after:,.1f} | {after / before:.2f} |")


if __name__ == "__main__":
    main()
