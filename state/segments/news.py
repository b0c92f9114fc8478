"""What the segment model hands the models step: published descriptions, settlements and
the segments users join (`tailor.state.segments.segmentation` makes them)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tailor.state.crossing import crossing

__all__ = [
    "AgedSettled",
    "Joined",
    "News",
    "Published",
    "SegmentInfo",
    "SegmentModel",
    "Settled",
]


@crossing
@dataclass(frozen=True, slots=True)
class SegmentInfo:
    """What a cluster segment means (published when its readable name changes), so
    consumers can read segment ids."""

    segment: str
    name: str
    centroid: dict[str, float]
    version: int
    changed_at: float = 0.0  # event time of the learn point that (re)named it


@crossing
@dataclass(frozen=True, slots=True)
class SegmentModel:
    """The whole segment model as consumers see it (settings, segments, quality), JSON-ready.

    `version` is the number of users learned when it was taken: later records replace it.
    """

    version: int
    record: dict[str, Any]


Published = SegmentInfo | SegmentModel


@dataclass(frozen=True, slots=True)
class Settled:
    """A user's segments at the place of their update `version` in event-time order."""

    user_id: str
    version: int
    segment: str
    segment_name: str
    rfm_segment: str | None


@dataclass(frozen=True, slots=True)
class Joined:
    """A user's cluster segment at one of their clusterer learn points.

    Per-segment trending counts a user's events in this segment. Learn points sit at places
    fixed by the data (a user's 1st, (1 + n·learn_every)-th update, in event-time order), so
    what a segment's trending holds never depends on batching; the segment of an output is
    worked out where the output is drafted, at the end of a batch, which does.
    """

    user_id: str
    segment: str


@dataclass(frozen=True, slots=True)
class AgedSettled:
    """A user's profile aged to `at` with its segments at `at`'s place in event-time order."""

    user_id: str
    version: int
    at: float
    profile: Mapping[str, Any]
    segment: str
    segment_name: str
    rfm_segment: str | None


#: What the segment model hands the models step.
News = Published | Settled | Joined | AgedSettled
