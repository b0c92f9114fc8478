"""Pictures of the segments, for people who would rather look than read (`--plot`).

`tailor resegment --plot FILE` draws, side by side: every live user projected on the first
two principal components of the clusterer's encoding, coloured by live segment; the same
points coloured by batch k-means cluster (where the two pictures differ is where the online
model and the batch check disagree); and each live segment's mean profile in standard
deviations (a heat map: one row per segment, one column per feature). Drawn with matplotlib's
Agg canvas (no screen needed), seeded, as PNG.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from sklearn.decomposition import PCA

__all__ = ["plot_resegment"]

SEED = 42
#: Points drawn at most (a seeded sample beyond): a scatter of a million dots says no more.
MAX_POINTS = 20_000


def _scatter(ax: Axes, xy: np.ndarray, labels: Sequence[str], title: str) -> None:
    for index, label in enumerate(sorted(set(labels))):
        mask = np.array([value == label for value in labels])
        ax.scatter(xy[mask, 0], xy[mask, 1], s=6, alpha=0.6, color=f"C{index % 10}", label=label)
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
    _scatter(axes[0], xy, [readable[i] for i in kept], "live segments")
    _scatter(axes[1], xy, [f"batch:{batch[i]}" for i in kept], "batch k-means")
    segments = sorted(set(live))
    means = np.array(
        [matrix[np.array(live) == s][:, : len(features)].mean(axis=0) for s in segments]
    )
    image = axes[2].imshow(np.clip(means, -2, 2), cmap="RdBu_r", vmin=-2, vmax=2, aspect="auto")
    axes[2].set_yticks(range(len(segments)), segments)  # their names are in the first legend
    axes[2].set_xticks(range(len(features)), features, rotation=70, ha="right", fontsize=7)
    axes[2].set_title("mean profile of each live segment (σ)")
    fig.colorbar(image, ax=axes[2], fraction=0.04)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    return path
