"""Re-fitting the online segments from batch k-means on a sample of users (a warm restart).

Online k-means follows the most recent learn points; over weeks its centres drift away from
where the users as a whole stand, and the segments stop agreeing with a batch segmentation
of the same users. A re-fit runs batch k-means
(k-means++ and Lloyd, the best of `restarts`, seeded: `tailor.state.segments.clusterers.best_lloyd`)
on the sampled users' profiles aged to the re-fit's moment, and the segments take its centres
(`SegmentRegistry.reseed` keeps each segment's number for the centre nearest its anchor).
The scaler standardises over the same users (`tailor.state.segments.profile_sample`). Why weekly
re-fits on a sample: docs/decisions/0012-segments-refit-weekly.md (the prototype:
docs/design/reseeding.md).

A centre that holds fewer than `min_share` of the sample is dropped, its users are left out of
the fit, and Lloyd runs again from the other centres: a handful of outliers (Online Retail's
wholesale buyers) then join their nearest segment instead of forming one a marketer cannot
use, and do not drag that segment's centre towards them (trimmed k-means, in the manner of
Cuesta-Albertos et al. 1997).

>>> import numpy as np
>>> points = np.array([[0.0], [0.1], [0.2], [5.0], [5.1], [5.2], [9.0]])
>>> centres = refit_centres(points, k=3, min_share=0.2, restarts=3, seed=1)
>>> sorted(round(float(c[0]), 3) for c in centres)
[0.1, 5.1]
"""

from __future__ import annotations

import numpy as np

from tailor.state.segments.clusterers import best_lloyd, lloyd, squared_distances

__all__ = ["refit_centres"]


def refit_centres(
    points: np.ndarray, k: int, min_share: float, restarts: int, seed: int
) -> np.ndarray:
    """Batch k-means centres of `points` (rows), none holding under `min_share` of them."""
    k = min(k, len(points))
    centres = best_lloyd(points, k, restarts, np.random.default_rng(seed))
    fitted = np.ones(len(points), dtype=bool)  # the points the centres are fitted to
    while len(centres) > 1:
        labels = squared_distances(points, centres).argmin(axis=1)
        shares = np.bincount(labels, minlength=len(centres)) / len(points)
        smallest = int(shares.argmin())
        if shares[smallest] >= min_share:
            break
        fitted &= labels != smallest
        centres, _inertia = lloyd(points[fitted], np.delete(centres, smallest, axis=0))
    return centres
