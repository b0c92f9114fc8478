"""Standard batch RFM over every customer at one moment: the reference the streaming tiers
(`tailor.state.segments.rfm_tiers`) are measured against, on the same scores and tier table.

Each dimension's cut points are numpy's inverted-CDF quintiles of all customers' values
(recency in days, frequency, monetary), so a customer's tier depends on everyone at that
moment, which is what a marketer's batch job computes.

>>> values = [(float(r), float(r % 3 + 1), 10.0 * r) for r in range(10)]
>>> cuts = batch_cuts(values)
>>> cuts[0]
(1.0, 3.0, 5.0, 7.0)
>>> batch_tier((0.0, 3.0, 90.0), cuts), batch_tier((9.0, 1.0, 0.0), cuts)
('champions', 'lost')
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tailor.state.segments.rfm_tiers import (
    QUANTILES,
    Cuts,
    fm_score,
    score_higher_better,
    score_lower_better,
    tier_of,
)

__all__ = ["Values", "batch_cuts", "batch_tier"]

#: One customer: (recency days, frequency, monetary).
Values = tuple[float, float, float]


def batch_cuts(values: Sequence[Values]) -> Cuts:
    """The quintile cut points of each dimension over `values`."""
    columns = [np.array([v[d] for v in values], dtype=float) for d in range(3)]
    r, f, m = (
        tuple(float(x) for x in np.quantile(c, QUANTILES, method="inverted_cdf")) for c in columns
    )
    return r, f, m


def batch_tier(value: Values, cuts: Cuts) -> str:
    """The tier of one customer's values under `cuts`."""
    r = score_lower_better(value[0], cuts[0])
    f = score_higher_better(value[1], cuts[1])
    m = score_higher_better(value[2], cuts[2])
    return tier_of(r, fm_score(f, m))
