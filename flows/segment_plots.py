"""Pictures of the segments, for people who would rather look than read (`--plot`).

`tailor segments --plot FILE` draws each cluster segment's size over event time (from the
history the sink appends at every published segment model) and the model's z-scores per
segment and feature (a heat map).

`tailor resegment --plot FILE` draws, side by side: every live user projected on the first
two principal components of the clusterer's encoding, coloured by live segment; the same
points coloured by batch k-means cluster (where the two pictures differ is where the online
model and the batch check disagree); and each live segment's mean profile in standard
deviations (a heat map: one row per segment, one column per feature). Drawn with matplotlib's
Agg canvas (no screen needed), seeded, as PNG.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from sklearn.decomposition import PCA

__all__ = ["plot_resegment", "plot_segments"]

SEED = 42
#: Points drawn at most (a seeded sample beyond): a scatter of a million dots says no more.
MAX_POINTS = 20_000


def _scatter(
    ax: Axes, xy: np.ndarray, labels: Sequence[str], title: str, colours: dict[str, int]
) -> None:
    for label in sorted(set(labels)):
        mask = np.array([value == label for value in labels])
        colour = f"C{colours[label] % 10}"
        ax.scatter(xy[mask, 0], xy[mask, 1], s=6, alpha=0.6, color=colour, label=label)
    ax.set_title(title)
    ax.set_xlabel("principal component 1")
    ax.set_ylabel("principal component 2")
    ax.legend(fontsize=7, markerscale=2, loc="best")


def plot_resegment(
    matrix: np.ndarray,
    live: Sequence[str],
    batch: Sequence[int],
    names: dict[str, str],
    features: Sequence[str],
    path: Path,
) -> Path:
    """Write the three panels (module docstring) for users `matrix` (encoded rows) with live
    segment ids `live` and batch clusters `batch`; `names` reads segment ids."""
    rows = np.arange(len(matrix))
    if len(rows) > MAX_POINTS:
        rows = np.sort(np.random.default_rng(SEED).choice(rows, MAX_POINTS, replace=False))
    xy = PCA(n_components=2, random_state=SEED).fit_transform(matrix)[rows]
    readable = [f"{s} {names.get(s, '')}".strip() for s in live]
    fig = Figure(figsize=(20, 7))  # no pyplot: no global state, no screen, Agg on save
    axes = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1, 1, 1.1]})
    kept = [int(i) for i in rows]
    clusters = [f"batch:{b}" for b in batch]
    colours = {label: n for n, label in enumerate(sorted(set(readable)))}
    colours |= _matched(readable, clusters, colours)
    _scatter(axes[0], xy, [readable[i] for i in kept], "live segments", colours)
    _scatter(axes[1], xy, [clusters[i] for i in kept], "batch k-means", colours)
    segments = sorted(set(live))
    means = np.array(
        [matrix[np.array(live) == s][:, : len(features)].mean(axis=0) for s in segments]
    )
    _heat(fig, axes[2], segments, list(features), means)  # names: in the first legend
    axes[2].set_title("mean profile of each live segment (σ)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    return path


def _matched(live: Sequence[str], batch: Sequence[str], colours: dict[str, int]) -> dict[str, int]:
    """Each batch cluster takes the colour of the live segment it shares most users with
    (one to one, largest overlap first), so agreeing panels look alike; the rest take
    colours no live segment has."""
    overlap = Counter(zip(batch, live, strict=True))
    matched: dict[str, int] = {}
    used: set[str] = set()
    for (cluster, segment), _n in sorted(overlap.items(), key=lambda kv: (-kv[1], kv[0])):
        if cluster not in matched and segment not in used:
            matched[cluster] = colours[segment]
            used.add(segment)
    spare = iter(range(len(colours), len(colours) + len(set(batch))))
    return {c: matched[c] if c in matched else next(spare) for c in sorted(set(batch))}


def _heat(fig: Figure, ax: Axes, rows: list[str], columns: list[str], values: np.ndarray) -> None:
    image = ax.imshow(np.clip(values, -2, 2), cmap="RdBu_r", vmin=-2, vmax=2, aspect="auto")
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xticks(range(len(columns)), columns, rotation=70, ha="right", fontsize=7)
    fig.colorbar(image, ax=ax, fraction=0.04)


def plot_segments(
    history: Sequence[tuple[float, dict[str, int]]],
    zscores: dict[str, dict[str, float]],
    names: dict[str, str],
    path: Path,
    features: Sequence[str] = (),
) -> Path:
    """Sizes of the cluster segments over event time (`history`: (event time, segment →
    size) per published model) and the model's z-scores (segment → feature → σ), features
    in the model's order (`features`; else by name)."""
    fig = Figure(figsize=(18, 6.5))
    sizes_ax, heat_ax = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.2, 1]})
    segments = sorted({s for _at, sizes in history for s in sizes if s.startswith("cluster:")})
    times = [datetime.fromtimestamp(at, UTC) for at, _sizes in history]
    for index, segment in enumerate(segments):
        counts = [sizes.get(segment, 0) for _at, sizes in history]
        label = f"{segment} {names.get(segment, '')}".strip()
        sizes_ax.plot(times, counts, marker=".", color=f"C{index % 10}", label=label)
    sizes_ax.set_title("cluster segment sizes at each published model (event time)")
    sizes_ax.set_ylabel("users")
    sizes_ax.legend(fontsize=7, loc="best")
    fig.autofmt_xdate()
    rows = sorted(zscores)
    columns = list(features) or sorted({f for z in zscores.values() for f in z})
    values = np.array([[zscores[r].get(f, 0.0) for f in columns] for r in rows])
    _heat(fig, heat_ax, rows, columns, values.reshape(len(rows), len(columns)))
    heat_ax.set_title("what defines each segment (z-scores, σ)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    return path
