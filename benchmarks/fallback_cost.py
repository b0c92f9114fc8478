"""What the published lists cost the models: learning with and without their change tracking,
and one refresh of every list, in CPU time (so other processes on the machine matter less).

    flock /work/wt/measure.lock python -m benchmarks.fallback_cost [--events 100000] [--rounds 3]

MovieLens latest-small's ratings in time order, each a product view with the movie's genres as
categories, are learned by the shipped live recommenders (`LiveRecs`, the hybrid) one by one,
as the models step does. After a warm-up, rounds alternate, each first in turn: tracking on
(as built), tracking off (the `FallbackChanges.learned` call replaced by a no-op). The models
are the same either way; the difference is what `tailor.state.recs.fallbacks` adds per event,
which is also timed alone (`timeit` of `FallbackChanges.learned` on a rating with three genres
by a user in a segment), as on a shared machine the rounds' difference can drown in noise.
Then, on the learned models, the time of a refresh (`LiveRecs.fallback_lists`) that publishes
every list: what one worker pays per `recs.fallback_every_s` at most, however busy the stream.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import time
import timeit
from pathlib import Path

from tailor.flows.config import shipped
from tailor.state.recs.base import Interaction
from tailor.state.recs.fallbacks import FallbackChanges, FallbackSources
from tailor.state.recs.live_recs import LiveRecs
from tailor.state.recs.settings import RecSettings

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "movielens-latest-small"


def interactions(limit: int) -> list[Interaction]:
    """The first `limit` ratings in time order, as views with the movie's genres."""
    with (DATA / "movies.csv").open() as handle:
        genres = {r["movieId"]: tuple(r["genres"].split("|")) for r in csv.DictReader(handle)}
    with (DATA / "ratings.csv").open() as handle:
        rows = sorted(
            (float(r["timestamp"]), r["userId"], r["movieId"]) for r in csv.DictReader(handle)
        )
    return [Interaction(u, m, ts, categories=genres.get(m, ())) for ts, u, m in rows[:limit]]


def learn_seconds(events: list[Interaction], tracking: bool) -> tuple[float, LiveRecs]:
    """CPU seconds to learn `events` one by one (history: the user's last 10 items)."""
    config = shipped()
    recs = LiveRecs.build(settings=RecSettings.of(config.recs, config.segments.seed))
    original = FallbackChanges.learned
    if not tracking:
        FallbackChanges.learned = lambda self, event, sources: None  # type: ignore[method-assign]
    history: dict[str, list[str]] = {}
    try:
        started = time.process_time()
        for event in events:
            seen = history.setdefault(event.user, [])
            recs.learn(event, tuple(seen[-10:]))
            seen.append(event.item)
        return time.process_time() - started, recs
    finally:
        FallbackChanges.learned = original  # type: ignore[method-assign]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    events = interactions(args.events)
    learn_seconds(events[:2000], tracking=True)  # compiles FISM's kernel: not counted
    on: list[float] = []
    off: list[float] = []
    for n in range(args.rounds):  # alternating, each first in turn
        for tracking in (n % 2 == 0, n % 2 != 0):
            seconds, learned = learn_seconds(events, tracking)
            (on if tracking else off).append(seconds)
            if tracking:
                recs = learned
    recs.fallbacks.taken = 0  # every list due, as after a block
    recs.fallbacks.blocked_at = recs.fallbacks.position
    started = time.process_time()
    published = recs.fallback_lists(shipped().recs.fallback_length)
    refresh = time.process_time() - started
    lists = len(FallbackSources.of(recs.models.values()).lists())
    one = Interaction("u1", events[0].item, 0.0, categories=("Drama", "Comedy", "Romance"))
    recs.assign_segment("u1", "cluster:1")
    sources = FallbackSources.of(recs.models[name] for name in sorted(recs.models))
    alone = min(timeit.repeat(lambda: recs.fallbacks.learned(one, sources), number=100_000))
    n = len(events)
    print("| learning | µs/event (median of rounds) | rounds (s) |")
    print("|---|---|---|")
    for label, runs in (("tracking on", on), ("tracking off", off)):
        cost = statistics.median(runs) / n * 1e6
        print(f"| {label} | {cost:.2f} | {', '.join(f'{s:.2f}' for s in runs)} |")
    ratio = statistics.median(off) / statistics.median(on)
    print(f"\nthroughput of learning, on / off: {ratio:.3f}")
    print(f"the tracking alone: {alone / 100_000 * 1e6:.2f} µs/event")
    print(f"one refresh of all {lists} lists ({len(published)} written): {refresh * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
