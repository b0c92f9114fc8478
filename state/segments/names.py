"""Readable, unique and stable names for behavioural segments.

A segment number means nothing to a marketer, so each segment is named by how its anchor (the
smoothed mean of its members, in standardised space where 0 is the population mean and 1 a
standard deviation) stands out: the strongest two or three deviations in words, plus the
device when the segment is clearly one device, e.g. ``"big spenders · frequent buyers ·
mobile"``. Names must also be trustworthy over time:

* unique: when two segments would read the same, the next strongest deviation is added, and
  only as a last resort a number;
* stable: a segment keeps its name until its anchor has really moved (`rename_distance`
  standard deviations from where it stood when named), so noise at a threshold never flips it.

>>> describe({"spend_30d": 1.2, "views_24h": -0.8}, device=None)
'big spenders · few views (24h)'
>>> namer = SegmentNamer(rename_distance=1.0)
>>> namer.update(0, [1.2, 0.0], lambda parts: "big spenders")
True
>>> namer.update(0, [1.5, 0.0], lambda parts: "anything else")  # moved 0.3 < 1.0: kept
False
>>> namer.names[0]
'big spenders'
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = [
    "MAX_NAME_PARTS",
    "Z_THRESHOLD",
    "SegmentNamer",
    "describe",
    "dominant_device",
    "feature_label",
]

#: A feature joins a name when the anchor is this many standard deviations from the mean.
Z_THRESHOLD = 0.5
MAX_NAME_PARTS = 3
TYPICAL = "typical"
SEPARATOR = " · "

#: Words for a high / low value of the profile's features (others read "high <name>").
_LABELS: dict[str, tuple[str, str]] = {
    "session_duration": ("long session", "short session"),
    "session_events": ("busy session", "quiet session"),
    "product_views": ("many product views", "few product views"),
    "session_count": ("many sessions", "few sessions"),
    "avg_session_duration": ("long sessions", "short sessions"),
    "avg_session_events": ("deep sessions", "shallow sessions"),
    "bounce_rate": ("bouncing", "engaged"),
    "recency_days": ("lapsed buyers", "recent buyers"),
    "purchases_30d": ("buying now", "not buying now"),
    "spend_30d": ("big spenders", "small spenders"),
    "purchases_total": ("frequent buyers", "rare buyers"),
    "spend_total": ("high lifetime value", "low lifetime value"),
}


def feature_label(name: str, high: bool) -> str:
    """Words for one feature's deviation; windowed view counts read "many views (24h)"."""
    if name in _LABELS:
        return _LABELS[name][0 if high else 1]
    if name.startswith("views_"):
        return f"{'many' if high else 'few'} views ({name[len('views_') :]})"
    return f"{'high' if high else 'low'} {name}"


def describe(z: Mapping[str, float], device: str | None, max_parts: int = MAX_NAME_PARTS) -> str:
    """The `max_parts` strongest deviations in `z` (feature → std devs) in words, else "typical".

    Ties in strength break by feature name, so the same anchor always reads the same.
    """
    strong = [(abs(v), n) for n, v in z.items() if abs(v) >= Z_THRESHOLD and math.isfinite(v)]
    strong.sort(key=lambda vn: (-vn[0], vn[1]))
    room = max_parts - (1 if device else 0)
    parts = [feature_label(n, z[n] > 0) for _, n in strong[:room]]
    if device:
        parts.append(device)
    return SEPARATOR.join(parts) if parts else TYPICAL


#: A device joins the name when the cluster is mostly that device and clearly more than average.
DEVICE_SHARE = 0.5
DEVICE_LIFT = 0.15


def dominant_device(shares: Mapping[str, float], population: Mapping[str, float]) -> str | None:
    """The device a segment is mostly on, clearly more than users overall (`shares` and
    `population`: device → share), or None.

    >>> dominant_device({"mobile": 0.8, "desktop": 0.2}, {"mobile": 0.5, "desktop": 0.5})
    'mobile'
    """
    best: tuple[float, str] | None = None
    for device, share in shares.items():
        strong = share >= DEVICE_SHARE and share - population.get(device, 0.0) >= DEVICE_LIFT
        if strong and (best is None or share > best[0]):
            best = (share, device)
    return best[1] if best else None


def _words(name: str) -> frozenset[str]:
    """A name's parts, in any order."""
    return frozenset(name.split(SEPARATOR))


def _distance(a: Sequence[float], b: Sequence[float]) -> float:
    return math.sqrt(sum((x - y) * (x - y) for x, y in zip(a, b, strict=True)))


class SegmentNamer:
    """Names per segment number: unique among the named segments, renamed only on real moves.

    Parameters
    ----------
    rename_distance
        How far (standard deviations, Euclidean over all dimensions) a segment's anchor must
        move from where it was named before the name is looked at again.
    """

    def __init__(self, rename_distance: float = 1.0) -> None:
        self.rename_distance = rename_distance
        self.names: dict[int, str] = {}
        self._named_at: dict[int, list[float]] = {}

    def update(
        self, segment: int, anchor: Sequence[float], candidate: Callable[[int], str]
    ) -> bool:
        """(Re)name `segment` if it is new or has moved; True when its name changed.

        `candidate(parts)` describes the segment with at most `parts` parts.
        """
        named_at = self._named_at.get(segment)
        if named_at is not None and _distance(anchor, named_at) < self.rename_distance:
            return False
        self._named_at[segment] = list(anchor)
        name = self._unique(segment, candidate)
        if self.names.get(segment) == name:
            return False
        self.names[segment] = name
        return True

    def _unique(self, segment: int, candidate: Callable[[int], str]) -> str:
        """A name whose words differ from every other segment's: "a · b" and "b · a" read
        the same to a person, so they count as one name."""
        taken = {_words(name) for s, name in self.names.items() if s != segment}
        name = candidate(MAX_NAME_PARTS)
        for parts in (MAX_NAME_PARTS + 1, MAX_NAME_PARTS + 2):
            if _words(name) not in taken:
                return name
            name = candidate(parts)
        base, n = name, 2
        while _words(name) in taken:
            name, n = f"{base} #{n}", n + 1
        return name

    def forget(self, segment: int) -> None:
        """Drop a segment's name (it vanished), freeing the name for others."""
        self.names.pop(segment, None)
        self._named_at.pop(segment, None)

    def to_snapshot(self) -> dict[str, Any]:
        return {"rename_distance": self.rename_distance, "names": dict(self.names)} | {
            "named_at": {segment: list(at) for segment, at in self._named_at.items()}
        }

    @classmethod
    def from_snapshot(cls, data: Mapping[str, Any]) -> SegmentNamer:
        made = cls(data["rename_distance"])
        made.names = dict(data["names"])
        made._named_at = {segment: list(at) for segment, at in data["named_at"].items()}
        return made
