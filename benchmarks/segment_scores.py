"""How a segmentation is scored against known personas: the measures `benchmarks.segments` tables.

The adjusted Rand index (ARI) against the personas' true labels, on held-out users, on what
users get as stable segments, as a rolling window while learning, for scikit-learn's batch
k-means on the same features, and how many events a model needs after a drift.
"""

from __future__ import annotations

import gc
import time
from collections import Counter, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score

from benchmarks.personas import DEVICES, PersonaPoint, personas
from tailor.state.profile.user import FEATURE_NAMES
from tailor.state.segments.segmenter import Segmenter

__all__ = [
    "HELD_OUT",
    "TARGET",
    "RollingARI",
    "adaptation",
    "batch_ari",
    "batch_matrix",
    "drift_recovery",
    "held_out",
    "held_out_ari",
    "learn",
    "recovery",
    "rolling",
    "segments_ari",
]
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
    shows up as that model's max latency (the worker tunes its GC: `tailor.flows.runner.tune_gc`).
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
