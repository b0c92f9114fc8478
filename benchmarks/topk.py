"""What one top-K costs against catalogue size: why top-K runs once per changed user per batch.

`python -m benchmarks.topk [--sizes 10000,100000,1000000] [--k 10]` builds each recommender
over a synthetic catalogue of N items (seeded; Zipf-like popularity) and times `recommend` for
users whose exclusion set is 200 items (a typical heavy user):

* ISGD: one matvec over the item-factor array and an `argpartition`: linear in N;
* co-occurrence: proportional to the neighbours of the user's last items, not to N;
* trending: a walk down the kept top cache: constant in N until exclusions exhaust the cache.

Prints µs per call (median of repeats) as a Markdown table.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np

from tailor.state.recs.cooc_counts import CoOccurrence
from tailor.state.recs.isgd import ISGD
from tailor.state.recs.trending import Trending

REPEATS = 200


def _timed(call: Callable[[], object], repeats: int = REPEATS) -> float:
    """Median µs per call."""
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1e6


def _items(n: int, rng: np.random.Generator, size: int) -> list[str]:
    """Zipf-like draws from a catalogue of n items."""
    ranks = np.minimum(rng.zipf(1.3, size=size), n) - 1
    return [f"i{r}" for r in ranks]


def isgd_us(n: int, k: int, exclude: set[str]) -> float:
    model = ISGD(n_factors=10, seed=1)
    for i in range(n):  # every item known, so the matvec covers the whole catalogue
        model.add(f"u{i % 1000}", f"i{i}")
    return _timed(lambda: model.recommend("u1", k, exclude))


def cooc_us(n: int, k: int, exclude: set[str], rng: np.random.Generator) -> float:
    model = CoOccurrence(max_neighbors=300, window=10, alpha=0.25)
    history: list[str] = []
    for item in _items(n, rng, 200_000):
        model.add(history, item)
        history = [*history[-9:], item]
    return _timed(lambda: model.recommend(history, k, exclude))


def trending_us(n: int, k: int, exclude: set[str], rng: np.random.Generator) -> float:
    model = Trending(halflife_s=86400.0)
    for t, item in enumerate(_items(n, rng, 200_000)):
        model.add(item, float(t))
    for i in range(n):
        model.add(f"i{i}", 0.0)  # the whole catalogue has a score
    return _timed(lambda: model.top(k, exclude))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--k", type=int, default=10)
    args = parser.parse_args()
    print("| catalogue | ISGD µs | co-occurrence µs | trending µs |")
    print("|---|---|---|---|")
    for n in (int(s) for s in args.sizes.split(",")):
        rng = np.random.default_rng(7)
        exclude = {f"i{r}" for r in range(200)}  # the 200 most popular: worst case for caches
        row = (
            isgd_us(n, args.k, exclude),
            cooc_us(n, args.k, exclude, rng),
            trending_us(n, args.k, exclude, rng),
        )
        print(f"| {n:,} | " + " | ".join(f"{us:,.0f}" for us in row) + " |", flush=True)


if __name__ == "__main__":
    main()
