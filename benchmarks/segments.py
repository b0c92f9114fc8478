"""How well each online clusterer finds the personas, what it costs, and how fast it follows drift.

For every clusterer Tailor offers, a `Segmenter` learns a stream of synthetic personas
(`benchmarks/personas.py`) one user at a time, as the dataflow does, and is scored against the
known personas with the adjusted Rand index (ARI: 1 = the personas exactly, 0 = chance):

- µs/event: one `learn_predict` (log, online scaling, learn, predict), mean, p99 and max;
- final ARI: fresh personas re-predicted without learning, after the whole stream (raw
  cluster ids); stable segments ARI: the same for the segments users get (`learn_segment`,
  then `segment`: `state.segment_registry` numbering, nearest published anchor);
- streaming ARI: the ids handed out while learning, the ones written to Redis (DBSTREAM and
  CluStream renumber their clusters when they rebuild them, which this column shows);
- batch: scikit-learn `KMeans(n_init=10)` on the same signed-log1p + standardised + one-hot
  features, the reference an online model should come close to;
- drift: with the personas' behaviour changed half way, how many events until the rolling ARI
  (window 1,000) is back at >= 0.9 and stays there to the end, or "never" (0: it never fell
  below); the ARI on fresh drifted users of the model as it was at the drift; and how many
  events of learning until re-predicting those users scores >= 0.9 again (checked every 100).

A second table runs the default Segmenter on many short streams per warm-up length, since a
too-short k-means++ warm-up fails on a few seeds only.

    python -m benchmarks.segments --n 50000 --seeds 3
"""

from __future__ import annotations

import argparse
import gc
import math
import statistics
import sys
import time
from collections import Counter, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score

from benchmarks.personas import DEVICES, PersonaPoint, personas
from state.clusterers import CLUSTERER_DEFAULTS
from state.segmenter import Segmenter
from state.user import FEATURE_NAMES

__all__ = [
    "RollingARI",
    "adaptation",
    "batch_ari",
    "batch_matrix",
    "drift_recovery",
    "held_out_ari",
    "learn",
]

CLUSTERERS: tuple[str, ...] = tuple(CLUSTERER_DEFAULTS)
WINDOW = 1000
TARGET = 0.9
HELD_OUT = 5000
HELD_OUT_SEED_OFFSET = 10_000  # fresh users: a seed no training stream uses


def _pairs(n: float) -> float:
    return n * (n - 1) / 2


class RollingARI:
    """ARI of the last `window` (label, prediction) pairs, from a running contingency table.

    Recomputing scikit-learn's ARI after every event costs ~0.3 ms; the table costs a few µs
    and gives the same number.
    """

    def __init__(self, window: int = WINDOW) -> None:
        self.window = window
        self._pairs: deque[tuple[int, int]] = deque()
        self._cells: Counter[tuple[int, int]] = Counter()
        self._labels: Counter[int] = Counter()
        self._preds: Counter[int] = Counter()

    def update(self, label: int, pred: int) -> None:
        self._pairs.append((label, pred))
        self._count((label, pred), 1)
        if len(self._pairs) > self.window:
            self._count(self._pairs.popleft(), -1)

    def _count(self, pair: tuple[int, int], step: int) -> None:
        self._cells[pair] += step
        self._labels[pair[0]] += step
        self._preds[pair[1]] += step

    @property
    def full(self) -> bool:
        return len(self._pairs) >= self.window

    def get(self) -> float:
        index = sum(_pairs(c) for c in self._cells.values())
        rows = sum(_pairs(c) for c in self._labels.values())
        cols = sum(_pairs(c) for c in self._preds.values())
        total = _pairs(len(self._pairs))
        if total == 0:
            return 1.0
        expected = rows * cols / total
        best = (rows + cols) / 2
        if best == expected:  # both partitions trivial: scikit-learn's convention
            return 1.0
        return (index - expected) / (best - expected)


@dataclass(frozen=True)
class Run:
    """One clusterer over one stream: per-event cost and the ids it handed out."""

    micros: list[float]
    preds: list[int]
    segmenter: Segmenter


def learn(
    points: Sequence[PersonaPoint], clusterer: str, params: Mapping[str, Any] | None, seed: int
) -> Run:
    """Feed the stream through `learn_predict`, timing each call.

    The stream's own objects are frozen out of the garbage collector first: otherwise a full
    collection over the 50,000 generated users (~0.4 s) lands on whichever call trips it and
    shows up as that model's max latency (the worker tunes its GC: `flows.runner.tune_gc`).
    """
    seg = Segmenter(clusterer, params=params, seed=seed)
    micros, preds = [], []
    clock = time.perf_counter_ns
    gc.collect()
    gc.freeze()
    try:
        for p in points:
            start = clock()
            preds.append(seg.learn_predict(p.features, p.device))
            micros.append((clock() - start) / 1000)
    finally:
        gc.unfreeze()
    return Run(micros, preds, seg)


def segments_ari(
    points: Sequence[PersonaPoint],
    test: Sequence[PersonaPoint],
    clusterer: str,
    params: Mapping[str, Any] | None,
    seed: int,
) -> float:
    """Held-out ARI of the stable segments users get (`learn_segment`/`segment`), not raw ids."""
    seg = Segmenter(clusterer, params=params, seed=seed)
    for p in points:
        seg.learn_segment(p.features, p.device)
    found = [seg.segment(p.features, p.device) for p in test]
    preds = [-1 if s is None else s for s in found]
    return float(adjusted_rand_score([p.label for p in test], preds))


def held_out(seed: int, n: int = HELD_OUT) -> list[PersonaPoint]:
    return personas(n, seed + HELD_OUT_SEED_OFFSET)


def held_out_ari(seg: Segmenter, points: Sequence[PersonaPoint]) -> float:
    """ARI of re-predicting (no learning) users the model never saw."""
    preds = [seg.predict(p.features, p.device) for p in points]
    return float(adjusted_rand_score([p.label for p in points], preds))


def _log_matrix(points: Sequence[PersonaPoint]) -> np.ndarray:
    raw = np.array([[p.features[f] for f in FEATURE_NAMES] for p in points], dtype=float)
    return np.sign(raw) * np.log1p(np.abs(raw))


def _one_hot(points: Sequence[PersonaPoint]) -> np.ndarray:
    return np.array([[1.0 if p.device == d else 0.0 for d in DEVICES] for p in points])


def batch_matrix(
    points: Sequence[PersonaPoint], fit: Sequence[PersonaPoint] | None = None
) -> np.ndarray:
    """The Segmenter's transform in batch: signed log1p, standardised with the mean and std of
    `fit` (default: `points`), devices one-hot and unscaled."""
    logs = _log_matrix(points)
    ref = logs if fit is None else _log_matrix(fit)
    std = ref.std(axis=0)
    scaled = (logs - ref.mean(axis=0)) / np.where(std > 0, std, 1.0)
    return np.hstack([scaled, _one_hot(points)])


def batch_ari(
    train: Sequence[PersonaPoint], test: Sequence[PersonaPoint], n_clusters: int, seed: int
) -> float:
    """scikit-learn's batch KMeans(n_init=10) fitted on `train`, scored on `test`."""
    model = KMeans(n_clusters=n_clusters, n_init=10, random_state=seed)
    model.fit(batch_matrix(train))
    preds = model.predict(batch_matrix(test, fit=train))
    return float(adjusted_rand_score([p.label for p in test], preds))


def rolling(labels: Sequence[int], preds: Sequence[int], window: int = WINDOW) -> list[float]:
    """Rolling ARI after each event (windows shorter than `window` at the start)."""
    meter, out = RollingARI(window), []
    for label, pred in zip(labels, preds, strict=True):
        meter.update(label, pred)
        out.append(meter.get())
    return out


def recovery(scores: Sequence[float], drift_at: int, target: float = TARGET) -> int | None:
    """Events after `drift_at` until the rolling ARI is >= target and stays there to the end;
    None when it is below target at the end."""
    if scores[-1] < target:
        return None
    last_below = max((i for i in range(drift_at, len(scores)) if scores[i] < target), default=-1)
    return max(0, last_below + 1 - drift_at)


def drift_recovery(
    clusterer: str, params: Mapping[str, Any] | None, n: int, seed: int, window: int = WINDOW
) -> int | None:
    """Recovery (events) of one clusterer after the personas drift at n // 2."""
    points = personas(n, seed, drift_at=n // 2)
    run = learn(points, clusterer, params, seed)
    return recovery(rolling([p.label for p in points], run.preds, window), n // 2)


def adaptation(
    clusterer: str,
    params: Mapping[str, Any] | None,
    n: int,
    seed: int,
    step: int = 100,
    target: float = TARGET,
) -> tuple[float, int | None]:
    """How bad the drift is for the model learned before it, and how fast learning fixes that.

    Returns the ARI of the pre-drift model on fresh drifted users (what a frozen model would
    score), and the events after the drift until re-predicting those users scores >= target
    (checked every `step` events; None if never within the stream). Sharper than the rolling
    ARI, whose 1,000-event window hides a quick adaptation.
    """
    drift_at = n // 2
    points = personas(n, seed, drift_at=drift_at)
    fresh = personas(HELD_OUT // 5, seed + HELD_OUT_SEED_OFFSET, drift_at=0)
    seg = learn(points[:drift_at], clusterer, params, seed).segmenter
    frozen = held_out_ari(seg, fresh)
    for i, p in enumerate(points[drift_at:]):
        if i % step == 0 and held_out_ari(seg, fresh) >= target:
            return frozen, i
        seg.learn_predict(p.features, p.device)
    return frozen, None


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
