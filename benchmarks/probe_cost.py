"""The hybrid's learning with its self-test, probes asking FISM for a rank or for a list.

    flock /work/wt/measure.lock python -m benchmarks.probe_cost [--events 40000] [--rounds 4]

The default hybrid (`tailor.state.recs.settings.build("hybrid")`) learns the first `--events`
MovieLens ratings as `tailor evaluate` reads them (history of 20, history excluded), probing
as the worker does (every testable interaction of the first 5,000, then one in 20). Each
round runs it twice, alternating which goes first: once as shipped (a probe asks FISM where
the next item ranks, `tailor.state.recs.top_k.rank_in_top_k`), once with FISM's `rank` hidden, so
probes build its list (`top_k`). Both must end with the same paired statistics (printed), so only
the time differs.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from tailor.flows.config import shipped
from tailor.flows.evaluate import load_interactions, settings_of
from tailor.state.recs.base import Interaction
from tailor.state.recs.fism_recommender import FISMRecommender
from tailor.state.recs.settings import build

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "movielens-latest-small"


def learn(events: list[Interaction]) -> tuple[float, int, float]:
    """Seconds, probes, and a checksum of the paired statistics."""
    hybrid = build("hybrid", settings_of(shipped()))
    history: dict[str, list[str]] = {}
    started = time.perf_counter()
    for event in events:
        mine = history.setdefault(event.user, [])
        recent = mine[-20:]
        hybrid.learn_one(event, recent, set(recent))
        mine.append(event.item)
    took = time.perf_counter() - started
    paired = getattr(hybrid, "paired", {})
    return took, getattr(hybrid, "probes", 0), sum(total for _n, total, _sq in paired.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=40_000)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    events = load_interactions([DATA / "ratings.csv"], "movielens")[: args.events]
    rank = FISMRecommender.rank
    print("| round | probes rank: s | probes build the list: s | ratio | probes | same stats |")
    print("|---|---|---|---|---|---|")
    for round_ in range(args.rounds):
        took: dict[bool, tuple[float, int, float]] = {}
        for ranks in (True, False) if round_ % 2 else (False, True):
            if ranks:
                FISMRecommender.rank = rank  # type: ignore[method-assign]
            else:
                del FISMRecommender.rank  # the hybrid then asks for the list
            took[ranks] = learn(events)
        FISMRecommender.rank = rank  # type: ignore[method-assign]
        fast, slow = took[True], took[False]
        print(
            f"| {round_} | {fast[0]:.2f} | {slow[0]:.2f} | {fast[0] / slow[0]:.2f} | "
            f"{fast[1]:,} | {fast[1:] == slow[1:]} |"
        )


if __name__ == "__main__":
    main()
