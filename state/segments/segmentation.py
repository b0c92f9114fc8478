"""Everything about segments the models step keeps: clusterer, names, RFM tiers, quality.

`Segmentation` is the segment half of the global models (recommenders are the other): it
learns from a user's profile at learn points (their 1st, 11th, 21st ... event, and every
purchase for RFM), assigns users to segments cheaply (nearest anchor, RFM tier), and says
what to publish: a `SegmentInfo` when a segment's readable name changes, a `SegmentModel` of
the whole model every `publish_every` learned users, at the end of the warm-up, on drift and
after a re-fit. Every `refit_every_s` of event time the segments are re-fitted from batch
k-means on a sample of users (`Segmenter.refit`), at the first learn point past the boundary:
a place in event-time order, so every replica re-fits at the same point.

Learn points are applied in **event-time order**, the same whichever worker or partition
brought them (`tailor.state.segments.event_order`): online k-means depends on the order it sees
points in, and with several partitions or workers the arrival order is an accident of scheduling,
event time is not. Users are assigned at once (their output must not wait), with the model as it
stands; each assignment is then *settled* at its own place in that order, and a `Settled` says what
it is there, so the models step can correct the few that differ. What a user is finally left with
is thus the same with one worker or several.

>>> seg = Segmentation(Segmenter(features=("spend_30d",), params={"n_clusters": 2}, warmup=4))
>>> for n in range(6):
...     _ = seg.observe(f"u{n}", 1, float(n), "page_view", {"spend_30d": 900.0 * (n % 2)}, None)
>>> seg.assign({"spend_30d": 900.0}, None)[1]
'big spenders'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tailor.state.profile.event import PURCHASE
from tailor.state.segments.event_order import EventTimeOrder, Held, Stamp
from tailor.state.segments.news import (
    AgedSettled,
    Joined,
    News,
    SegmentInfo,
    SegmentModel,
    Settled,
)
from tailor.state.segments.quality import CentreDrift, DriftReading, StreamingSilhouette
from tailor.state.segments.rfm_tiers import RFMTiers
from tailor.state.segments.segmenter import Segmenter

__all__ = ["Segmentation", "cluster_segment", "learn_point"]

DIGITS = 6


def cluster_segment(number: int) -> str:
    """The segment id of a cluster segment number (memberships, profiles, rules)."""
    return f"cluster:{number}"


def learn_point(version: int, event_type: str, learn_every: int) -> bool:
    """Whether a user's update is one the segment model learns from: their 1st, (1 +
    n·learn_every)-th, ... and every purchase. The user-state step makes exactly these updates
    (and each batch's last) full, and a replica's copy keeps features only at these."""
    return (version - 1) % learn_every == 0 or event_type == PURCHASE


@dataclass(frozen=True, slots=True)
class _Point:
    """A profile waiting for its place in event-time order: to learn from, or to settle."""

    ts: float
    user_id: str
    version: int
    event_type: str
    features: Mapping[str, float]
    device: str | None
    learn: bool  # a learn point (else a settle point)
    cluster: bool = False  # a clusterer learn point (else RFM only)
    aged: Mapping[str, Any] | None = None  # an aged profile's (`observe_aged`)


#: What a snapshot keeps of the configuration (a resume goes on as it ran).
_SETTINGS = (
    "learn_every",
    "publish_every",
    "drift_every",
    "reorder_s",
    "origins",
    "refit_every_s",
    "min_share",
    "horizons",
)

#: Learn points sort before the settle point of the same update: settled after that event;
#: an aged profile of the same version after both.
_LEARN, _SETTLE, _AGED = 0, 1, 2


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
    origins: tuple[
        str, ...
    ] = ()  # the source partitions to wait for (`tailor.state.segments.event_order`)
    refit_every_s: float = 0.0  # 0: never
    min_share: float = 0.0  # a re-fit's smallest segment (share of the sample)
    horizons: Mapping[str, float] = field(
        default_factory=dict
    )  # `tailor.state.profile.user.feature_horizons`
    next_refit: float | None = None  # event time of the next re-fit boundary
    order: EventTimeOrder[_Point] = field(init=False)

    def __post_init__(self) -> None:
        self.order = EventTimeOrder(self.origins, self.reorder_s)

    def observe(
        self,
        user_id: str,
        version: int,
        ts: float,
        event_type: str,
        features: Mapping[str, float] | None,
        device: str | None,
        stamp: Stamp | None = None,
        settle: bool = False,
    ) -> list[News]:
        """Take one update; learn and settle what is due. `features` may be None off learn
        points; `settle` asks for a `Settled` at this update's place (its output was sent)."""
        cluster = (version - 1) % self.learn_every == 0
        learn = learn_point(version, event_type, self.learn_every)
        entries: list[tuple[tuple[str, int, int], _Point]] = []
        if learn or settle:
            if features is None:
                raise ValueError(
                    f"update {version} of user {user_id!r} is light where a full one is due: "
                    "the user-state step's learn_every must equal the models step's"
                )
            if learn:
                point = _Point(ts, user_id, version, event_type, features, device, True, cluster)
                entries.append(((user_id, version, _LEARN), point))
            if settle:
                point = _Point(ts, user_id, version, event_type, features, device, False)
                entries.append(((user_id, version, _SETTLE), point))
        self.order.add(stamp, ts, entries)
        return self._apply(self.order.release())

    def observe_aged(
        self,
        user_id: str,
        version: int,
        at: float,
        profile: Mapping[str, Any],
        device: str | None,
        stamp: Stamp | None = None,
    ) -> list[News]:
        """Take a profile aged to `at` (`profile["features"]` as of then): nothing is learned
        from it; an `AgedSettled` comes out at `at`'s place in event-time order."""
        point = _Point(at, user_id, version, "", profile["features"], device, False, False, profile)
        self.order.add(stamp, at, [((user_id, version, _AGED), point)], moves=False)
        return self._apply(self.order.release())

    def progress(self, stamp: Stamp | None, ts: float | None) -> list[News]:
        """A record that brings nothing to learn (dropped upstream) still moves its partition."""
        self.order.add(stamp, ts, ())
        return self._apply(self.order.release())

    def flush(self) -> list[News]:
        """Learn and settle everything still held (end of a bounded input)."""
        return self._apply(self.order.flush())

    def _apply(self, points: list[_Point]) -> list[News]:
        out: list[News] = []
        for p in points:
            if p.learn:
                self._learn(p, out)
                continue
            segment, name, tier = self.assign(p.features, p.device)
            if p.aged is None:
                out.append(Settled(p.user_id, p.version, segment, name, tier))
            else:
                aged = AgedSettled(p.user_id, p.version, p.ts, p.aged, segment, name, tier)
                out.append(aged)
        return out

    def _learn(self, p: _Point, out: list[News]) -> None:
        self.rfm.learn_one(
            p.user_id,
            p.features.get("recency_days", 0.0),
            p.features.get("purchases_total", 0.0),
            p.features.get("spend_total", 0.0),
            now=p.ts,
        )
        refitted = self._refit_due(p.ts)
        if not p.cluster:
            self.segmenter.sample(p.features, p.device, p.user_id, p.ts)
            if refitted:
                self._publish_renamed(p.ts, out)
                out.append(self.model_record(p.ts))
            return
        segment = self.segmenter.learn_segment(p.features, p.device, p.user_id, p.ts)
        if segment is not None:
            out.append(Joined(p.user_id, cluster_segment(segment)))
        self._publish_renamed(p.ts, out)
        drifted = self._watch_quality(segment)
        registry = self.segmenter.registry
        learned = registry.learned
        due = learned % self.publish_every == 0 or learned == registry.warmup
        if due or drifted or refitted:
            out.append(self.model_record(p.ts))

    def _refit_due(self, ts: float) -> bool:
        """Re-fit at the first learn point at or past the next boundary; True if it did."""
        every = self.refit_every_s
        if every <= 0:
            return False
        if self.next_refit is None:
            self.next_refit = (ts // every + 1) * every
            return False
        if ts < self.next_refit:
            return False
        boundary = ts // every * every
        self.next_refit = boundary + every
        retired = self.segmenter.refit(boundary, self.horizons, self.min_share)
        if retired is None:
            return False
        for number in retired:
            self.names.pop(cluster_segment(number), None)
        return True

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
        """Erasure: the user leaves the RFM and profile samples and the event-time order."""
        self.rfm.forget(user_id)
        self.segmenter.forget(user_id)
        self.order.discard(lambda p: p.user_id == user_id)

    def take_settles(self) -> list[Held[_Point]]:
        """Remove and return the settle points held: the outputs of this replica's own users
        still waiting for their place (`put_settles` hands them to the replica that owns
        those users after a change of worker count, `tailor.flows.rescale`)."""
        return self.order.take(lambda point: not point.learn)

    def put_settles(self, held: list[Held[_Point]]) -> None:
        """Hold settle points taken from another replica of the same model."""
        self.order.put(held)

    def _watch_quality(self, segment: int | None) -> bool:
        """Silhouette sample every learn point, drift every `drift_every`; True on drift."""
        if segment is None:
            return False
        self.silhouette.update(self.segmenter.last_point, segment)
        if self.segmenter.registry.learned % self.drift_every:
            return False
        self.last_drift = self.drift.check(self.segmenter.registry.anchors)
        return self.last_drift.drifted

    def _publish_renamed(self, ts: float, out: list[News]) -> None:
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
            "refits": segmenter.refits,
            "retired": [cluster_segment(n) for n in sorted(registry.retired)],
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

    def to_snapshot(self) -> dict[str, Any]:
        """Every part's snapshot, settings, published names, and the points held for their
        place in event-time order (each as a tuple of its fields)."""
        settings = _SETTINGS
        drift = None if self.last_drift is None else tuple(self.last_drift)
        return {name: getattr(self, name) for name in settings} | {
            "segmenter": self.segmenter.to_snapshot(),
            "rfm": self.rfm.to_snapshot(),
            "silhouette": self.silhouette.to_snapshot(),
            "drift": self.drift.to_snapshot(),
            "names": dict(self.names),
            "info_version": self.info_version,
            "last_drift": drift,
            "next_refit": self.next_refit,
            "order": self.order.to_snapshot(_point_data),
        }

    @classmethod
    def from_snapshot(cls, data: Mapping[str, Any]) -> Segmentation:
        settings = _SETTINGS
        drift = data["last_drift"]
        made = cls(
            Segmenter.from_snapshot(data["segmenter"]),
            rfm=RFMTiers.from_snapshot(data["rfm"]),
            silhouette=StreamingSilhouette.from_snapshot(data["silhouette"]),
            drift=CentreDrift.from_snapshot(data["drift"]),
            names=dict(data["names"]),
            info_version=data["info_version"],
            last_drift=None if drift is None else DriftReading(*drift),
            next_refit=data["next_refit"],
            **{name: data[name] for name in settings},
        )
        made.order = EventTimeOrder.from_snapshot(data["order"], _point)
        return made


def _point_data(p: _Point) -> tuple[Any, ...]:
    """A held point as plain data (`_point` undoes it)."""
    features = dict(p.features)
    fields = (p.ts, p.user_id, p.version, p.event_type, features, p.device, p.learn, p.cluster)
    return fields if p.aged is None else (*fields, dict(p.aged))


def _point(data: tuple[Any, ...]) -> _Point:
    return _Point(*data)


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, DIGITS) + 0.0
