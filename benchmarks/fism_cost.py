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
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

from flows.evaluate import load_interactions, push_history
from state.isgd import ISGD
from state.rec_settings import RecSettings, build
from state.recommender import ISGDRecommender, Recommender

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--events", type=int, default=100_836)
    parser.add_argument("--history-len", type=int, default=20)
    parser.add_argument("--isgd-history", type=int, default=RecSettings().isgd_history)
    parser.add_argument("--isgd-negatives", type=int, default=RecSettings().isgd_negatives)
    args = parser.parse_args()
    settings = replace(
        RecSettings(), isgd_history=args.isgd_history, isgd_negatives=args.isgd_negatives
    )
    result = measure(args.data, args.events, args.history_len, settings)
    old, new = result["isgd (old)"], result["fism"]
    fism = f"FISM µs (history {args.isgd_history}, {args.isgd_negatives} negatives)"
    print(f"| call | ISGD µs | {fism} | FISM / ISGD |")
    print("|---|---|---|---|")
    for call in CALLS:
        print(f"| {call} | {old[call]:.1f} | {new[call]:.1f} | {new[call] / old[call]:.2f} |")


if __name__ == "__main__":
    main()
