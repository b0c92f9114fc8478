"""What the `isgd` recommender costs per call: ISGD's user vectors against FISM's history sums.

`python -m benchmarks.fism_cost [--data ratings.csv] [--events N] [--history-len 20]` replays a
dataset (MovieLens latest-small by default) through both models with the default `[recs]`
settings, the history kept as the user step keeps it, and times each call of each model on
the same event one after the other (so the machine's drift hits both alike):

* `learn_one` (ISGD: the user's vector and the seen set; FISM: u from the history rows, one
  mini-batch over the item, the negatives and the history rows);
* `score` of 50 candidates (what the hybrid asks each component per list);
* `recommend` of the top 10 (a matvec over the catalogue, the user's items excluded).

Prints mean µs per call and the ratio FISM / ISGD as a Markdown table.

`--learning [--batch 100] [--exclude history|kept|seen]` times FISM's learning alone, same run:
`learn_one` with the bookkeeping in Python (before decision 0008: `tests/state/fism_support.py`)
and compiled, and `learn_many` of batches of `--batch` events (a replica's remote batches), each
on its own model, in rotating order per batch; the three models are checked equal at the end.
`--exclude history` passes what a replica excludes (the history); `kept` what the live step
excludes for a heavy buyer (the history and the last 200 items, as `max_purchased` keeps);
`seen` everything the user rated before (unbounded: the stress case).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np

from tailor.flows.config import shipped
from tailor.flows.evaluate import load_interactions, push_history, settings_of
from tailor.state.recs.base import Interaction, Recommender
from tailor.state.recs.fism import FISM
from tailor.state.recs.isgd import ISGD, ISGDRecommender
from tailor.state.recs.settings import RecSettings, build
from tests.state import fism_support

DEFAULT_DATA = Path("../shared/data/movielens-latest-small/ratings.csv")
CALLS = ("learn_one", "score 50", "recommend 10")


def _old(settings: RecSettings) -> ISGDRecommender:
    """ISGD with the defaults it had as the `isgd` recommender (factors 10, lr 0.3, reg 0.01,
    8 negatives, init std 0.1, bias lr 0.03)."""
    return ISGDRecommender(ISGD(10, 0.3, 0.01, 8, 0.1, 0.03, settings.seed))


def measure(
    data: Path, events: int, history_len: int, settings: RecSettings
) -> dict[str, dict[str, float]]:
    """Total seconds per model per call over the replay."""
    interactions = load_interactions([data])[:events]
    models: dict[str, Recommender] = {"isgd (old)": _old(settings), "fism": build("isgd", settings)}
    spent = {name: dict.fromkeys(CALLS, 0.0) for name in models}
    histories: dict[str, list[str]] = {}
    seen: dict[str, set[str]] = {}
    recent: list[str] = []
    for event in interactions:
        history = histories.setdefault(event.user, [])
        mine = seen.setdefault(event.user, set())
        candidates = recent[-50:]
        for name, model in models.items():  # learning last, as the replay does
            started = time.perf_counter()
            model.score(event.user, history, candidates)
            scored = time.perf_counter()
            model.recommend(event.user, history, 0.0, 10, mine)
            recommended = time.perf_counter()
            model.learn_one(event, history, mine)
            learned = time.perf_counter()
            spent[name]["score 50"] += scored - started
            spent[name]["recommend 10"] += recommended - scored
            spent[name]["learn_one"] += learned - recommended
        mine.add(event.item)
        push_history(history, event.item, history_len)
        if event.item not in recent[-50:]:
            recent.append(event.item)
    return {
        name: {call: total / len(interactions) * 1e6 for call, total in calls_spent.items()}
        for name, calls_spent in spent.items()
    }


LEARNING = ("learn_one (Python bookkeeping)", "learn_one (compiled)", "learn_many (compiled)")
KEPT = 200
Batch = tuple[list[str], list[tuple[str, ...]], list[set[str]]]


def _batches(
    interactions: list[Interaction], history_len: int, exclude: str, size: int
) -> Iterator[Batch]:
    """(items, histories, excludes) per batch, as the live step hands them over."""
    histories: dict[str, list[str]] = {}
    seen: dict[str, dict[str, None]] = {}  # in order, oldest first
    for start in range(0, len(interactions), size):
        batch: Batch = ([], [], [])
        for event in interactions[start : start + size]:
            history = histories.setdefault(event.user, [])
            mine = seen.setdefault(event.user, {})
            batch[0].append(event.item)
            batch[1].append(tuple(history))
            kept: Iterable[str] = ()
            if exclude != "history":
                kept = mine if exclude == "seen" else islice(reversed(mine), KEPT)
            batch[2].append(set(history).union(kept))
            mine.pop(event.item, None)
            mine[event.item] = None
            push_history(history, event.item, history_len)
        yield batch


def measure_learning(
    data: Path, events: int, history_len: int, settings: RecSettings, size: int, exclude: str
) -> dict[str, float]:
    """µs per interaction of each way of learning, and whether the models came out equal."""
    interactions = load_interactions([data])[:events]
    kwargs: dict[str, Any] = {
        "n_factors": settings.isgd_factors,
        "learning_rate": settings.isgd_learning_rate,
        "regularization": settings.isgd_regularization,
        "negatives": settings.isgd_negatives,
        "init_std": settings.isgd_init_std,
        "bias_learning_rate": settings.isgd_bias_learning_rate,
        "alpha": settings.isgd_alpha,
        "history": settings.isgd_history,
        "seed": settings.seed,
    }
    before, one, many = fism_support.FISM(**kwargs), FISM(**kwargs), FISM(**kwargs)
    FISM(**kwargs).learn_many(["a", "b"], [["b"], ["a"]], [{"a"}, {"b"}])  # compiled, cached

    def learn_one(model: FISM | fism_support.FISM, batch: Batch) -> None:
        for item, history, excluded in zip(*batch, strict=True):
            model.learn_one(item, history, excluded)

    def learn_many(model: FISM, batch: Batch) -> None:
        model.learn_many(*batch)

    runs: list[tuple[Any, Callable[[Any, Batch], None]]]
    runs = [(before, learn_one), (one, learn_one), (many, learn_many)]
    spent = [0.0, 0.0, 0.0]
    for n, batch in enumerate(_batches(interactions, history_len, exclude, size)):
        for shift in range(3):
            way = (n + shift) % 3
            model, learn = runs[way]
            started = time.perf_counter()
            learn(model, batch)
            spent[way] += time.perf_counter() - started
    size_n = before.n_items
    equal = all(
        np.array_equal(model._p[:size_n], before._p[:size_n])
        and np.array_equal(model._bias[:size_n], before._bias[:size_n])
        and model.recency_queue() == before.recency_queue()
        for model in (one, many)
    )
    per_event = [total / len(interactions) * 1e6 for total in spent]
    result = dict(zip(LEARNING, per_event, strict=True))
    return {**result, "equal": float(equal)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--events", type=int, default=100_836)
    parser.add_argument("--history-len", type=int, default=20)
    defaults = settings_of(shipped())
    parser.add_argument("--isgd-history", type=int, default=defaults.isgd_history)
    parser.add_argument("--isgd-negatives", type=int, default=defaults.isgd_negatives)
    parser.add_argument("--learning", action="store_true", help="FISM's learning, A/B")
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--exclude", choices=("history", "kept", "seen"), default="history")
    args = parser.parse_args()
    settings = replace(defaults, isgd_history=args.isgd_history, isgd_negatives=args.isgd_negatives)
    if args.learning:
        learned = measure_learning(
            args.data, args.events, args.history_len, settings, args.batch, args.exclude
        )
        first = learned[LEARNING[0]]
        print(f"| FISM learning ({args.exclude} excluded, batches of {args.batch}) | µs | ratio |")
        print("|---|---|---|")
        for name in LEARNING:
            print(f"| {name} | {learned[name]:.1f} | {learned[name] / first:.2f} |")
        print(f"models equal: {bool(learned['equal'])}")
        return
    result = measure(args.data, args.events, args.history_len, settings)
    old, new = result["isgd (old)"], result["fism"]
    fism = f"FISM µs (history {args.isgd_history}, {args.isgd_negatives} negatives)"
    print(f"| call | ISGD µs | {fism} | FISM / ISGD |")
    print("|---|---|---|---|")
    for call in CALLS:
        print(f"| {call} | {old[call]:.1f} | {new[call]:.1f} | {new[call] / old[call]:.2f} |")


if __name__ == "__main__":
    main()
