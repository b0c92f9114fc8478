"""Everything about segments the models step keeps: clusterer, names, RFM tiers, quality.

`Segmentation` is the segment half of the global models (recommenders are the other): it
learns from a user's profile at learn points (their 1st, 11th, 21st ... event, and every
purchase for RFM), assigns users to segments cheaply (nearest anchor, RFM tier), and says
what to publish: a `SegmentInfo` when a segment's readable name changes, a `SegmentModel` of
the whole model every `publish_every` learned users, at the end of the warm-up and on drift.

Learn points are applied in **event-time order**, through a reorder buffer that holds them
until the newest event time seen is `reorder_s` past them (a watermark, as in Flink). Online
k-means depends on the order it sees points in; with several partitions or workers the
arrival order is an accident of scheduling, event time is not. So the model learns the same
points in the same order however the input was partitioned or spread over workers; only
which of the last `reorder_s` of points a user's assignment already reflects can differ.
`reorder_s = 0` learns in arrival order.

>>> seg = Segmentation(Segmenter(features=("spend_30d",), params={"n_clusters": 2}, warmup=4))
>>> for n in range(6):
...     _ = seg.observe(f"u{n}", 1, float(n), "page_view", {"spend_30d": 900.0 * (n % 2)}, None)
>>> seg.assign({"spend_30d": 900.0}, None)[1]
'big spenders'
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from state.event import PURCHASE
from state.rfm_tiers import RFMTiers
from state.segment_quality import CentreDrift, DriftReading, StreamingSilhouette
from state.segmenter import Segmenter

__all__ = ["Published", "SegmentInfo", "SegmentModel", "Segmentation", "cluster_segment"]

DIGITS = 6


def cluster_segment(number: int) -> str:
    """The segment id of a cluster segment number (memberships, profiles, rules)."""
    return f"cluster:{number}"


@dataclass(frozen=True, slots=True)
class SegmentInfo:
    """What a cluster segment means (published when its readable name changes), so
    consumers can read segment ids."""

    segment: str
    name: str
    centroid: dict[str, float]
    version: int
    changed_at: float = 0.0  # event time of the learn point that (re)named it


@dataclass(frozen=True, slots=True)
class SegmentModel:
    """The whole segment model as consumers see it (settings, segments, quality), JSON-ready.

    `version` is the number of users learned when it was taken: later records replace it.
    """

    version: int
    record: dict[str, Any]


Published = SegmentInfo | SegmentModel


@dataclass(order=True)
class _LearnPoint:
    """A profile waiting in the reorder buffer, ordered by (event time, user, version)."""

    ts: float
    user_id: str
    version: int
    seq: int  # arrival count: breaks the (practically impossible) remaining ties
    event_type: str = field(compare=False)
    features: Mapping[str, float] = field(compare=False)
    device: str | None = field(compare=False)
    cluster: bool = field(compare=False)  # a clusterer learn point (else RFM only)


@dataclass
class Segmentation:
    """The segment model of the models step (pickled with its snapshots)."""

    segmenter: Segmenter
    rfm: RFMTiers = field(default_factory=RFMTiers)
    silhouette: StreamingSilhouette = field(default_factory=StreamingSilhouette)
    drift: CentreDrift = field(default_factory=CentreDrift)
    learn_every: int = 10
    publish_every: int = 1000
    drift_every: int = 250
    reorder_s: float = 0.0
    names: dict[str, str] = field(default_factory=dict)  # as last published
    info_version: int = 0
    last_drift: DriftReading | None = None
    pending: list[_LearnPoint] = field(default_factory=list)
    newest_ts: float = float("-inf")
    arrivals: int = 0

    def observe(
        self,
        user_id: str,
        version: int,
        ts: float,
        event_type: str,
        features: Mapping[str, float] | None,
        device: str | None,
    ) -> list[Published]:
        """Take one update; learn what is due. `features` may be None off learn points."""
        cluster = (version - 1) % self.learn_every == 0
        if cluster or event_type == PURCHASE:
            if features is None:
                raise ValueError(
                    f"update {version} of user {user_id!r} is light where a full one is due: "
                    "the user-state step's learn_every must equal the models step's"
                )
            self.arrivals += 1
            point = _LearnPoint(
                ts, user_id, version, self.arrivals, event_type, features, device, cluster
            )
            heapq.heappush(self.pending, point)
        self.newest_ts = max(self.newest_ts, ts)
        return self._apply_until(self.newest_ts - self.reorder_s)

    def flush(self) -> list[Published]:
        """Learn everything still buffered (end of a bounded input)."""
        return self._apply_until(float("inf"))

    def _apply_until(self, watermark: float) -> list[Published]:
        out: list[Published] = []
        while self.pending and self.pending[0].ts <= watermark:
            self._learn(heapq.heappop(self.pending), out)
        return out

    def _learn(self, p: _LearnPoint, out: list[Published]) -> None:
        self.rfm.learn_one(
            p.user_id,
            p.features.get("recency_days", 0.0),
            p.features.get("purchases_total", 0.0),
            p.features.get("spend_total", 0.0),
            now=p.ts,
        )
        if not p.cluster:
            return
        segment = self.segmenter.learn_segment(p.features, p.device)
        self._publish_renamed(p.ts, out)
        drifted = self._watch_quality(segment)
        registry = self.segmenter.registry
        learned = registry.learned
        if learned % self.publish_every == 0 or learned == registry.warmup or drifted:
            out.append(self.model_record(p.ts))

    def assign(
        self, features: Mapping[str, float], device: str | None
    ) -> tuple[str, str, str | None]:
        """A user's (cluster segment, its name, RFM tier); "" / None where there is none."""
        number = self.segmenter.segment(features, device)
        segment = "" if number is None else cluster_segment(number)
        tier = self.rfm.tier(
            features.get("recency_days", 0.0),
            features.get("purchases_total", 0.0),
            features.get("spend_total", 0.0),
        )
        return segment, self.names.get(segment, ""), tier

    def forget(self, user_id: str) -> None:
        """Erasure: the user leaves the RFM sample and the reorder buffer."""
        self.rfm.forget(user_id)
        kept = [p for p in self.pending if p.user_id != user_id]
        if len(kept) != len(self.pending):
            heapq.heapify(kept)
            self.pending = kept

    def _watch_quality(self, segment: int | None) -> bool:
        """Silhouette sample every learn point, drift every `drift_every`; True on drift."""
        if segment is None:
            return False
        self.silhouette.update(self.segmenter.last_point, segment)
        if self.segmenter.registry.learned % self.drift_every:
            return False
        self.last_drift = self.drift.check(self.segmenter.registry.anchors)
        return self.last_drift.drifted

    def _publish_renamed(self, ts: float, out: list[Published]) -> None:
        segmenter = self.segmenter
        for number, name in segmenter.names.items():
            segment = cluster_segment(number)
            if self.names.get(segment) != name:
                self.names[segment] = name
                self.info_version += 1
                centroid = segmenter.centroid(number)
                out.append(SegmentInfo(segment, name, centroid, self.info_version, ts))

    def model_record(self, ts: float) -> SegmentModel:
        """What the segments mean, for consumers: settings, anchors, names, quality, RFM."""
        segmenter = self.segmenter
        registry = segmenter.registry
        segments = {
            cluster_segment(n): {
                "name": segmenter.names.get(n, ""),
                "centroid": segmenter.centroid(n),
                "zscores": segmenter.zscores(n),
                "learned": registry.members[n],
            }
            for n in (sorted(registry.anchors) if registry.ready else ())
        }  # numbers in the warm-up are provisional: not worth publishing
        record = {
            "version": registry.learned,
            "updated_at": ts,
            "clusterer": segmenter.clusterer,
            "params": segmenter.model_params(),
            "features": list(segmenter.features),
            "transforms": dict(segmenter.transforms),
            "devices": list(segmenter.devices),
            "warmup": registry.warmup,
            "ready": registry.ready,
            "segments": segments,
            "quality": self.quality(),
            "rfm": self._rfm_record(),
        }
        return SegmentModel(registry.learned, record)

    def quality(self) -> dict[str, Any]:
        """Silhouette on the recent sample, and the last drift reading."""
        drift = self.last_drift
        return {
            "silhouette": _rounded(self.silhouette.value),
            "silhouette_sample": self.silhouette.n_points,
            "drift": _rounded(drift.distance if drift else 0.0),
            "drift_events": self.drift.events,
            "appeared": drift.appeared if drift else 0,
            "vanished": drift.vanished if drift else 0,
        }

    def _rfm_record(self) -> dict[str, Any]:
        """Cut points (recency days, purchases, spend), so consumers can score users alike."""
        cuts = self.rfm.cut_points()
        names = ("recency_days", "frequency", "monetary")
        return {
            "customers": self.rfm.n_customers,
            "cut_points": dict(zip(names, cuts, strict=True)) if cuts else None,
        }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, DIGITS) + 0.0
