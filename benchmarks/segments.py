"""How well each online clusterer finds the personas, what it costs, and how fast it follows drift.

For every clusterer Tailor offers, a `Segmenter` learns a stream of synthetic personas
(`benchmarks/personas.py`) one user at a time, as the dataflow does, and is scored against the
known personas with the adjusted Rand index (ARI: 1 = the personas exactly, 0 = chance):

- µs/event: one `learn_predict` (log, online scaling, learn, predict), mean, p99 and max;
- final ARI: fresh personas re-predicted without learning, after the whole stream (raw
  cluster ids); stable segments ARI: the same for the segments users get (`learn_segment`,
  then `segment`: `tailor.state.segments.registry` numbering, nearest published anchor);
- streaming ARI: the ids handed out while learning, the ones written to Redis (DBSTREAM and
  CluStream renumber their clusters when they rebuild them, which this column shows);
- batch: scikit-learn `KMeans(n_init=10)` on the same signed-log1p + standardised + one-hot
  features, the reference an online model should come close to;
- drift: with the personas' behaviour changed half way, how many events until the rolling ARI
  (window 1,000) is back at >= 0.9 and stays there to the end, or "never" (0: it never fell
  below); the ARI on fresh drifted users of the model as it was at the drift; and how many
  events of learning until re-predicting those users scores >= 0.9 again (checked every 100).

The measures themselves live in `benchmarks/segment_scores.py`; this module runs them per
clusterer and prints the tables. A second table runs the default Segmenter on many short
streams per warm-up length, since a too-short k-means++ warm-up fails on a few seeds only.

    python -m benchmarks.segments --n 50000 --seeds 3
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sklearn.metrics import adjusted_rand_score

from benchmarks.personas import PersonaPoint, personas
from benchmarks.segment_scores import (
    HELD_OUT,
    TARGET,
    adaptation,
    batch_ari,
    drift_recovery,
    held_out,
    held_out_ari,
    learn,
    segments_ari,
)
from tailor.state.segments.clusterers import CLUSTERER_DEFAULTS
from tailor.state.segments.segmenter import Segmenter

CLUSTERERS: tuple[str, ...] = tuple(CLUSTERER_DEFAULTS)


@dataclass(frozen=True)
class Row:
    label: str
    mean_us: float
    p99_us: float
    max_us: float
    final_ari: float
    segments_ari: float
    streaming_ari: float
    batch_ari: float
    recoveries: list[int | None]
    frozen_ari: float
    adaptations: list[int | None]


#: Table rows: (label, clusterer, params over the defaults). River's random-start KMeans is
#: there to show what the warm start buys.
ROWS: tuple[tuple[str, str, dict[str, Any] | None], ...] = (
    *((name, name, None) for name in CLUSTERERS if name != "KMeans"),
    ("KMeans", "KMeans", None),
    ("KMeans, River's random start (warmup=0)", "KMeans", {"warmup": 0}),
)


def _p99(values: Sequence[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)]


_BATCH: dict[tuple[int, int, int], float] = {}


def _batch_once(
    points: Sequence[PersonaPoint], test: Sequence[PersonaPoint], k: int, seed: int
) -> float:
    """The batch reference depends only on the stream and k: computed once per table."""
    key = (len(points), k, seed)
    if key not in _BATCH:
        _BATCH[key] = batch_ari(points, test, k, seed)
    return _BATCH[key]


def measure(
    label: str, clusterer: str, params: Mapping[str, Any] | None, n: int, seeds: Sequence[int]
) -> Row:
    """One table row: means over seeds of every score (recoveries per seed)."""
    micros, finals, streams, batches, recoveries = [], [], [], [], []
    segments, frozen, adaptations = [], [], []
    for seed in seeds:
        points = personas(n, seed)
        run = learn(points, clusterer, params, seed)
        test = held_out(seed)
        micros.extend(run.micros)
        finals.append(held_out_ari(run.segmenter, test))
        segments.append(segments_ari(points, test, clusterer, params, seed))
        streams.append(float(adjusted_rand_score([p.label for p in points], run.preds)))
        batches.append(_batch_once(points, test, _n_clusters(clusterer, params), seed))
        recoveries.append(drift_recovery(clusterer, params, n, seed))
        before, after = adaptation(clusterer, params, n, seed)
        frozen.append(before)
        adaptations.append(after)
    return Row(
        label,
        statistics.fmean(micros),
        _p99(micros),
        max(micros),
        statistics.fmean(finals),
        statistics.fmean(segments),
        statistics.fmean(streams),
        statistics.fmean(batches),
        recoveries,
        statistics.fmean(frozen),
        adaptations,
    )


def _n_clusters(clusterer: str, params: Mapping[str, Any] | None) -> int:
    """The k the batch reference uses: the clusterer's own when it has one, else 5 personas."""
    merged = {**CLUSTERER_DEFAULTS[clusterer], **dict(params or {})}
    return int(merged.get("n_clusters", merged.get("n_macro_clusters", 5)))


def _per_seed(values: Sequence[int | None]) -> str:
    return " / ".join("never" if v is None else f"{v:,}" for v in values)


def format_table(rows: Sequence[Row]) -> str:
    """A Markdown table for the README."""
    head = (
        "| clusterer | µs/event mean (p99; max) | final ARI | stable segments ARI | streaming ARI "
        "| batch KMeans ARI "
        "| drift: rolling ARI back >= 0.9 after (events, per seed) | drift: frozen model ARI "
        "| drift: re-predicted ARI >= 0.9 after (events, per seed) |\n"
        "|---|---|---|---|---|---|---|---|---|"
    )
    lines = [
        f"| {r.label} | {r.mean_us:.0f} ({r.p99_us:.0f}; {r.max_us / 1000:.1f} ms) "
        f"| {r.final_ari:.3f} | {r.segments_ari:.3f} | {r.streaming_ari:.3f} | {r.batch_ari:.3f} "
        f"| {_per_seed(r.recoveries)} | {r.frozen_ari:.3f} | {_per_seed(r.adaptations)} |"
        for r in rows
    ]
    return "\n".join([head, *lines])


def warmup_robustness(warmups: Sequence[int], seeds: int, n: int = 3000) -> str:
    """The default Segmenter over many short streams per `warmup` (k-means++ runs on the first
    `warmup` points): the worst seed shows whether a warm-up is long enough, the mean does not."""
    lines = [
        "| Segmenter warmup | streams | mean final ARI | min | streams < 0.9 |",
        "|---|---|---|---|---|",
    ]
    for warmup in warmups:
        scores = []
        for seed in range(seeds):
            seg = Segmenter(seed=seed, warmup=warmup)
            for p in personas(n, seed):
                seg.learn_predict(p.features, p.device)
            scores.append(held_out_ari(seg, held_out(seed, 2000)))
        bad = sum(score < TARGET for score in scores)
        lines.append(
            f"| {warmup} | {seeds} x {n:,} events | {statistics.fmean(scores):.3f} "
            f"| {min(scores):.3f} | {bad} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=50_000, help="events per stream")
    parser.add_argument("--seeds", type=int, default=3, help="streams per clusterer (seeds 0..)")
    parser.add_argument(
        "--clusterers", nargs="*", default=list(CLUSTERERS), choices=CLUSTERERS, help="subset"
    )
    parser.add_argument(
        "--robust-seeds", type=int, default=30, help="short streams per warm-up (0: skip)"
    )
    args = parser.parse_args(argv)
    seeds = range(args.seeds)
    rows = []
    for label, name, params in ROWS:
        if name in args.clusterers:
            start = time.perf_counter()
            rows.append(measure(label, name, params, args.n, seeds))
            print(f"{label}: {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    print(f"{args.n:,} events per stream, seeds {list(seeds)}, held-out {HELD_OUT:,} fresh users")
    print(format_table(rows))
    if args.robust_seeds:
        print("\nDefault Segmenter by its `warmup` (the k-means++ warm-up of its KMeans):")
        print(warmup_robustness((100, 200, 300, 500), args.robust_seeds))


if __name__ == "__main__":
    main()
