"""How each feature is encoded before the segmenter standardises it (config `segments.features`).

Features are heavy-tailed (spend, view counts): "log" compresses them with a signed log1p;
"standard" leaves bounded values (rates, shares, the context mix's cyclical coordinates) as
they are. Non-finite values count as 0 either way.

>>> forward, inverse = TRANSFORMS["log"]
>>> round(forward(-99.0), 3), round(inverse(forward(-99.0)), 6)
(-4.605, -99.0)
>>> default_transforms(("spend_30d", "bounce_rate"))
{'spend_30d': 'log', 'bounce_rate': 'standard'}
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from state.context import CONTEXT_FEATURES

__all__ = ["TRANSFORMS", "default_transforms"]


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
#: the context mix's cyclical coordinates (`state.context`).
_STANDARD_BY_DEFAULT = frozenset({"bounce_rate", *CONTEXT_FEATURES})


def default_transforms(features: Sequence[str]) -> dict[str, str]:
    """ "log" for every feature except known bounded ones: what the config's empty table means."""
    return {f: "standard" if f in _STANDARD_BY_DEFAULT else "log" for f in features}
