"""What FISM's `learn_many` costs per interaction against `learn_one`, in one run.

`python -m benchmarks.fism_batch_cost [--data ratings.csv] [--events N] [--batch 1000]` replays
a dataset (MovieLens latest-small by default) with the `isgd` recommender's default settings
and the history kept as the user step keeps it (exclusions: the user's whole seen set, as in
`benchmarks.fism_cost`, or none with `--no-exclusions`). Two models learn the same events:
one by `learn_one` per event, one by `learn_many` per `--batch` events; which goes first
alternates by batch so that the machine's drift hits both alike. Only the learning calls are timed.

Prints µs per interaction of each, their ratio, and where `learn_many`'s time goes (item and
history rows, the negatives' walk, the summed steps; the rest is the queue moves) as a
Markdown table.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import state.fism_batch as fism_batch
from flows.evaluate import load_interactions, push_history
from state.fism import FISM, FISMRecommender
from state.rec_settings import RecSettings, build

DEFAULT_DATA = Path("../shared/data/movielens-latest-small/ratings.csv")
PARTS = ("_intern", "_negatives", "_step")


def _model() -> FISM:
    recommender = build("isgd", RecSettings())
    assert isinstance(recommender, FISMRecommender)
    return recommender.model


def measure(data: Path, events: int, batch: int, exclusions: bool) -> dict[str, float]:
    """µs per interaction: learn_one, learn_many, and learn_many's parts."""
    interactions = load_interactions([data])[:events]
    one, many = _model(), _model()
    spent = dict.fromkeys(("learn_one", "learn_many", *PARTS), 0.0)
    for part in PARTS:  # time the module's phases (a wrapper each: ~0.1 µs per batch)
        setattr(fism_batch, part, _timed(getattr(fism_batch, part), part, spent))
    histories: dict[str, list[str]] = {}
    seen: dict[str, set[str]] = {}
    for at in range(0, len(interactions), batch):
        steps = []
        for event in interactions[at : at + batch]:
            history = histories.setdefault(event.user, [])
            mine = seen.setdefault(event.user, set())
            steps.append((event.item, list(history), frozenset(mine if exclusions else ())))
            mine.add(event.item)
            push_history(history, event.item, 20)
        items, batch_histories, excludes = zip(*steps, strict=True)
        order = ("learn_one", "learn_many") if at // batch % 2 else ("learn_many", "learn_one")
        for name in order:
            started = time.perf_counter()
            if name == "learn_one":
                for item, history, exclude in steps:
                    one.learn_one(item, history, exclude)
            else:
                many.learn_many(items, batch_histories, excludes)
            spent[name] += time.perf_counter() - started
    return {name: total / len(interactions) * 1e6 for name, total in spent.items()}


def _timed(function, part: str, spent: dict[str, float]):  # type: ignore[no-untyped-def]
    def timed(*args, **kwargs):  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        result = function(*args, **kwargs)
        spent[part] += time.perf_counter() - started
        return result

    return timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--events", type=int, default=100_836)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--no-exclusions", action="store_true")
    args = parser.parse_args()
    result = measure(args.data, args.events, args.batch, not args.no_exclusions)
    one, many = result["learn_one"], result["learn_many"]
    print("| learn_one µs | learn_many µs | ratio | rows | negatives | steps |")
    print("|---|---|---|---|---|---|")
    parts = " | ".join(f"{result[part]:.1f}" for part in PARTS)
    print(f"| {one:.1f} | {many:.1f} | {many / one:.2f} | {parts} |")


if __name__ == "__main__":
    main()
