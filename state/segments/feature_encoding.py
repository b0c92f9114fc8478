"""How each feature is encoded before the segmenter standardises it (config `segments.features`).

Features are heavy-tailed (spend, view counts): "log" compresses them with a signed log1p;
"standard" leaves bounded values (rates, shares, the context mix's cyclical coordinates) as
they are. Non-finite values count as 0 either way. Once standardised, values are clipped to
±`Z_CLIP` deviations (`clip_z`), online and in `tailor resegment` alike.

>>> forward, inverse = TRANSFORMS["log"]
>>> round(forward(-99.0), 3), round(inverse(forward(-99.0)), 6)
(-4.605, -99.0)
>>> default_transforms(("spend_30d", "bounce_rate"))
{'spend_30d': 'log', 'bounce_rate': 'standard'}
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from tailor.state.profile.context import CONTEXT_FEATURES

__all__ = ["TRANSFORMS", "Z_CLIP", "clip_z", "default_transforms"]

#: Standardised values are clipped to this many standard deviations (winsorised). A feature
#: that is 0 for nearly every user (the open session's duration at the end of a replay) puts
#: the few others tens of deviations out, and batch k-means then spends a cluster on them; at
#: ±5σ it does not, and its segments are the same from seed to seed
#: (docs/decisions/0012-segments-refit-weekly.md).
Z_CLIP = 5.0


def clip_z(value: float) -> float:
    """A standardised value clipped to ±`Z_CLIP`."""
    return min(Z_CLIP, max(-Z_CLIP, value))


def _compress(value: float) -> float:
    """Signed log1p: tames heavy tails; non-finite values count as 0."""
    if not math.isfinite(value):
        return 0.0
    return math.copysign(math.log1p(abs(value)), value)


def _expand(value: float) -> float:
    return math.copysign(math.expm1(abs(value)), value)


def _finite(value: float) -> float:
    return value if math.isfinite(value) else 0.0


#: How a feature is encoded before online standardisation, by name (config
#: `segments.features`): "log" for counts, durations and money (heavy tails), "standard" for
#: bounded values such as rates. Each entry is (forward, inverse).
TRANSFORMS: dict[str, tuple[Callable[[float], float], Callable[[float], float]]] = {
    "log": (_compress, _expand),
    "standard": (_finite, _finite),
}
#: Features that are already bounded and read better without the log: rates, shares and
#: the context mix's cyclical coordinates (`tailor.state.profile.context`).
_STANDARD_BY_DEFAULT = frozenset({"bounce_rate", *CONTEXT_FEATURES})


def default_transforms(features: Sequence[str]) -> dict[str, str]:
    """ "log" for every feature except known bounded ones: what the config's empty table means."""
    return {f: "standard" if f in _STANDARD_BY_DEFAULT else "log" for f in features}
