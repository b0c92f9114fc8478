"""The models step: behavioural segments, rule segments and recommendations per changed user.

The models are global (a clusterer over all users, item co-occurrence and trending over all
events), so the flow keys every `UserUpdate` on one constant key and a single
`ModelsLogic` sees them all, one Bytewax batch at a time. A burst of events from one user costs
one recommendation and one Redis write per batch, not one per event.

Batch boundaries must not change what ends up in Redis: a file replay, a live stream and a
resume after a crash all cut the same events into different batches. So the models learn at
positions fixed by the data, never by the batching: co-occurrence and trending from every
event, the clusterer from a user's 1st, (1 + n·learn_every)-th, ... update (a busy user's
every click would otherwise drag the centres along one trajectory, at ~40 µs a step; the
user-state step, given the same `learn_every`, makes these updates full). A user's output is
computed at the position of their last FULL update in the batch, from the models exactly as
they stood after that event; a light update after it means a later full one is on its way
(the user-state step makes the last update of each of its batches full), so a user's last
update overall is full and what a user is left with depends only on the event order.
A user joins a segment for per-segment trending at their clusterer learn points too
(`state.segmentation.Joined`), not where an output is drafted (a batch end).
Everything else is seeded or counting-only and all rankings break ties by id.

The segment half (clusterer, names, RFM tiers, quality) is `state.segmentation.Segmentation`.
It learns in one event-time order over all source partitions (`state.event_order`), the same
with one worker or several. A user's output goes out at once with the segments as they stand
(the *provisional* output); when the update's place in that order is final the segments are
*settled* there, and the output is sent again with them, the same version, `settled=True`. An
output whose place was reached in its own batch goes out settled at once. The sink lets a
settled output rewrite its version only to change the segments (a *correction*, announced as
one), never a provisional output: so a replay after a crash, whose batches and provisional
segments differ from the killed run's, still leaves every version with its settled segments.
So what a user is left with in Redis does not depend on how many workers ran.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import astuple, dataclass, field, fields, replace
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import operator
from bytewax.operators import KeyedStream, StatefulBatchLogic

from operators.metrics import (
    REC_MRR,
    REC_NDCG,
    REC_RECALL,
    SEGMENT_CORRECTIONS,
    SEGMENT_DRIFT,
    SEGMENT_DRIFT_EVENTS,
    SEGMENT_LATE,
    SEGMENT_SILHOUETTE,
    SEGMENTS_LEARNED,
)
from operators.outputs import Draft, corrected, draft, user_output
from operators.records import (
    Block,
    Erasure,
    Progress,
    QualityReport,
    SegmentInfo,
    SegmentModel,
    UserOutput,
    UserUpdate,
)
from state import snapshots
from state.live_recs import LiveRecs, Recommendation
from state.rec_settings import RecSettings
from state.recommender import Interaction
from state.rfm_tiers import RFMTiers
from state.rules import RuleSet
from state.segment_quality import StreamingSilhouette
from state.segmentation import Joined, News, Published, Segmentation, Settled
from state.segmenter import DEFAULT_FEATURES, Segmenter

__all__ = ["RULE_CONTEXT_NAMES", "ModelParams", "ModelsLogic", "ModelsState", "models"]

#: Names rules may use besides the numeric features.
RULE_CONTEXT_NAMES: tuple[str, ...] = (
    "segment",
    "segment_name",
    "rfm",
    "device",
    "referrer",
    "top_category",
    "last_event_type",
)

ModelsOut = UserOutput | SegmentInfo | SegmentModel | Erasure | QualityReport


@dataclass(frozen=True)
class ModelParams:
    """Configuration of the models step (never learned state)."""

    k: int = 10
    clusterer: str = "KMeans"
    clusterer_params: Mapping[str, Any] | None = None
    features: tuple[str, ...] = DEFAULT_FEATURES  # what the clusterer sees
    profile_features: tuple[str, ...] = DEFAULT_FEATURES  # every profile feature (rules)
    devices: tuple[str, ...] = ("desktop", "mobile", "tablet")
    rules: Mapping[str, str] = field(default_factory=dict)
    recs: RecSettings = field(default_factory=RecSettings)  # the recommenders' settings
    exclude_seen: bool = True
    variant_shares: Mapping[str, float] | None = None  # A/B split (`state.variants`)
    variant_models: Mapping[str, str] | None = None  # variant → recommender
    variant_salt: str = "tailor"
    quality_window: int = 10_000
    max_per_category: int = 0  # diversity cap (0: off)
    seed: int = 42
    learn_every: int = 10
    transforms: Mapping[str, str] | None = None
    warmup: int = 300
    rename_distance: float = 1.0
    publish_every: int = 1000
    drift_every: int = 250
    rfm_sample_size: int = 4096
    reorder_s: float = 0.0
    origins: tuple[str, ...] = ()  # source partitions the event-time order waits for

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError(f"models.k must be >= 1, got {self.k}")
        if self.learn_every < 1:
            raise ValueError(f"segments.learn_every must be >= 1, got {self.learn_every}")
        if self.publish_every < 1:
            raise ValueError(f"segments.publish_every must be >= 1, got {self.publish_every}")

    def rule_names(self) -> tuple[str, ...]:
        """Every name a rule may refer to."""
        return (*dict.fromkeys((*self.profile_features, *self.features)), *RULE_CONTEXT_NAMES)


@dataclass
class ModelsState:
    """Everything the step learns; pickled whole by Bytewax snapshots."""

    segments: Segmentation
    recs: LiveRecs
    #: Each user's last output not yet settled (`Segmentation` says when and how).
    provisional: dict[str, UserOutput] = field(default_factory=dict)

    @classmethod
    def fresh(cls, params: ModelParams) -> ModelsState:
        segmenter = Segmenter(
            params.clusterer,
            params.clusterer_params,
            params.features,
            params.devices,
            params.seed,
            transforms=params.transforms,
            warmup=params.warmup,
            rename_distance=params.rename_distance,
        )
        segments = Segmentation(
            segmenter,
            rfm=RFMTiers(sample_size=params.rfm_sample_size, seed=params.seed),
            silhouette=StreamingSilhouette(seed=params.seed),
            learn_every=params.learn_every,
            publish_every=params.publish_every,
            drift_every=params.drift_every,
            reorder_s=params.reorder_s,
            origins=params.origins,
        )
        recs = LiveRecs.build(
            k=params.k,
            shares=params.variant_shares,
            models=params.variant_models,
            settings=replace(params.recs, k=params.k),  # one list length for serving and probes
            salt=params.variant_salt,
            exclude_seen=params.exclude_seen,
            quality_window=params.quality_window,
            max_per_category=params.max_per_category,
        )
        return cls(segments=segments, recs=recs)

    def to_snapshot(self) -> dict[str, Any]:
        """Plain data (`state.snapshots`); every setting is stored with the state, so a resume
        goes on with the models as they ran (a changed `[models]` or `[recs]` table takes
        effect on a fresh store, as before)."""
        return {
            "segments": self.segments.to_snapshot(),
            "recs": self.recs.to_snapshot(),
            "provisional": [astuple(output) for output in self.provisional.values()],
        }

    @classmethod
    def from_snapshot(cls, data: Mapping[str, Any]) -> ModelsState:
        names = [f.name for f in fields(UserOutput)]
        outputs = [dict(zip(names, values, strict=True)) for values in data["provisional"]]
        return cls(
            segments=Segmentation.from_snapshot(data["segments"]),
            recs=LiveRecs.from_snapshot(data["recs"]),
            provisional={
                o["user_id"]: UserOutput(
                    **o | {"recs": tuple(Recommendation(*r) for r in o["recs"])}
                )
                for o in outputs
            },
        )


ModelsIn = UserUpdate | Erasure | Progress | Block


class ModelsLogic(StatefulBatchLogic[ModelsIn, ModelsOut, bytes]):
    """Learn event by event; at each user's last full update in the batch, draft their output
    (profile, recommendations), and send the drafts with their segments at the end.

    A `SegmentInfo` comes out in the batch where its cluster's name changed, before the
    batch's outputs; users come out in the order of their last full update in the batch.
    """

    def __init__(
        self, params: ModelParams, resume_state: ModelsState | bytes | None = None
    ) -> None:
        self.params = params
        self.rules = RuleSet(params.rules, params.rule_names())
        # Updates seen per user since their last output, for latency only: not learned
        # state, so not snapshotted (a resumed run just loses a few latency samples).
        self._waiting: dict[str, list[UserUpdate]] = {}
        self.state: ModelsState
        if isinstance(resume_state, bytes):
            self.state = ModelsState.from_snapshot(snapshots.decode(resume_state, "models"))
        else:
            self.state = resume_state if resume_state is not None else ModelsState.fresh(params)
        self._drift_events_reported = self.state.segments.drift.events  # counted before
        self._late_reported = self.state.segments.order.late
        self._quality_reported = -1

    def on_batch(self, values: list[ModelsIn]) -> tuple[Iterable[ModelsOut], bool]:
        erased_at = {v.user_id: i for i, v in enumerate(values) if isinstance(v, Erasure)}
        last_full = {
            u.user_id: u for u in values if isinstance(u, UserUpdate) and u.features is not None
        }
        waiting, out = self._waiting, list[ModelsOut]()
        settled: list[Settled] = []
        drafts: list[Draft] = []
        for index, u in enumerate(values):
            if isinstance(u, Erasure):
                out.append(self._erase(u))
                continue
            if isinstance(u, Block):
                self.state.recs.block(u.item_id, u.blocked)
                continue
            if isinstance(u, Progress):
                settled += self._segment_news(self.state.segments.progress(u.stamp, u.ts), out)
                continue
            self._learn(u)
            updates = waiting.get(u.user_id)
            if updates is None:
                updates = waiting[u.user_id] = []
            updates.append(u)
            emit = last_full.get(u.user_id) is u and erased_at.get(u.user_id, -1) < index
            news = self.state.segments.observe(
                u.user_id, u.version, u.event.ts, u.event.type, u.features, u.device, u.stamp, emit
            )
            settled += self._segment_news(news, out)
            if last_full.get(u.user_id) is u:
                del waiting[u.user_id]
                if emit:  # not erased later in this batch
                    drafts.append(self._draft(updates))
        self._finish(drafts, settled, out)
        self._report_quality(out)
        return out, StatefulBatchLogic.RETAIN

    def on_eof(self) -> tuple[Iterable[ModelsOut], bool]:
        """A bounded input ended: learn and settle what the event-time order still holds."""
        out: list[ModelsOut] = []
        self._finish([], self._segment_news(self.state.segments.flush(), out), out)
        self._report_quality(out)
        return out, StatefulBatchLogic.RETAIN

    def _report_quality(self, out: list[ModelsOut]) -> None:
        """Live quality per variant to the gauges, and to Redis when it moved."""
        report = self.state.recs.report()
        if report.version == self._quality_reported:
            return
        self._quality_reported = report.version
        for variant, means in report.record.items():
            labels = (variant, means["model"])
            REC_RECALL.labels(*labels).set(means["recall"])
            REC_NDCG.labels(*labels).set(means["ndcg"])
            REC_MRR.labels(*labels).set(means["mrr"])
        out.append(report)

    def _finish(self, drafts: list[Draft], settled: list[Settled], out: list[ModelsOut]) -> None:
        """Send the batch's outputs, then settle earlier ones.

        An output whose place in event-time order was already reached in this batch goes out
        settled; the others get the segments as they stand and wait to be settled (one
        assignment each way, which is why segments are filled in here, at the end).
        """
        by_update = {(s.user_id, s.version): s for s in settled}
        provisional = self.state.provisional
        for pending in drafts:
            last = pending.updates[-1]
            done = by_update.pop((last.user_id, last.version), None)
            if done is None:
                features = pending.profile["features"]
                segments = self.state.segments.assign(features, last.device)
                output = user_output(pending, self.rules, *segments)
                provisional[last.user_id] = output
            else:
                segments = (done.segment, done.segment_name, done.rfm_segment)
                # settled: after a crash it may replace a provisional output of this version
                # that the killed run wrote, and whose correction this run will never send
                output = replace(user_output(pending, self.rules, *segments), settled=True)
                provisional.pop(last.user_id, None)
            out.append(output)
        for s in by_update.values():
            self._settle(s, out)

    def _erase(self, erasure: Erasure) -> Erasure:
        """Forget the user here too: pending updates, and their co-occurrence contributions.

        Trending scores and cluster centres are aggregates over everyone, decaying with
        time: nothing in them points back at one user, so they are left as they are. The
        RFM sample does hold users' values by id: the user leaves it.
        """
        self._waiting.pop(erasure.user_id, None)
        self.state.provisional.pop(erasure.user_id, None)
        self.state.recs.forget(erasure.user_id, erasure.history)
        self.state.segments.forget(erasure.user_id)
        return erasure

    def _learn(self, u: UserUpdate) -> None:
        """The recommenders learn from every event with an item, in arrival order, weighted
        by its type."""
        event, item = u.event, u.event.item_id
        if item is not None:
            history = u.history
            previous = history[:-1] if history and history[-1] == item else history
            weight = self.params.recs.weight_of(event.type)
            categories = tuple(event.category or ())
            interaction = Interaction(u.user_id, item, event.ts, weight, categories)
            self.state.recs.learn(interaction, previous, u.purchased)

    def _segment_news(self, news: list[News], out: list[ModelsOut]) -> list[Settled]:
        """Publish what the segment model published, move users to the segments they joined
        (per-segment trending); return the settlements for `_settle` (a settlement may
        concern an output of this very batch, not sent yet)."""
        settled: list[Settled] = []
        published: list[Published] = []
        for n in news:
            if isinstance(n, Settled):
                settled.append(n)
            elif isinstance(n, Joined):
                self.state.recs.assign_segment(n.user_id, n.segment)
            else:
                published.append(n)
        if published:
            self._publish(published, out)
        late = self.state.segments.order.late
        if late > self._late_reported:
            SEGMENT_LATE.inc(late - self._late_reported)
            self._late_reported = late
        return settled

    def _settle(self, s: Settled, out: list[ModelsOut]) -> None:
        """Send the user's last output again with its segments as settled.

        Also when they settled as sent: after a crash, Redis may hold this version as the
        killed run sent it, provisional with other segments, and only this output can put that
        right. The sink writes and announces it only when the stored segments differ.
        """
        sent = self.state.provisional.get(s.user_id)
        if sent is None or sent.version != s.version:
            return  # a newer output is on its way to be settled
        del self.state.provisional[s.user_id]
        rfm = s.rfm_segment or ""
        if (sent.segment, sent.segment_name, sent.rfm_segment) != (s.segment, s.segment_name, rfm):
            SEGMENT_CORRECTIONS.inc()
        out.append(corrected(sent, s, self.rules))

    def _publish(self, published: list[Published], out: list[ModelsOut]) -> None:
        """Segment news goes to the sink as is; the quality gauges follow it."""
        out.extend(published)
        segments = self.state.segments
        if segments.silhouette.value is not None:
            SEGMENT_SILHOUETTE.set(segments.silhouette.value)
        if segments.last_drift is not None:
            SEGMENT_DRIFT.set(segments.last_drift.distance)
        if segments.drift.events > self._drift_events_reported:
            SEGMENT_DRIFT_EVENTS.inc(segments.drift.events - self._drift_events_reported)
            self._drift_events_reported = segments.drift.events
        SEGMENTS_LEARNED.set(segments.segmenter.registry.learned)

    def _draft(self, updates: list[UserUpdate]) -> Draft:
        """Profile and recommendations at the user's last update, from the models as they
        stand right after it; `updates` are those the output reflects (for latency)."""
        last = updates[-1]
        recs_state = self.state.recs
        variant, served = recs_state.recommend(
            last.user_id, last.history, last.purchased, last.event.ts
        )
        return draft(updates, variant, served)

    def snapshot(self) -> bytes:
        """The state as plain data in a versioned envelope (`state.snapshots`): an immutable
        copy, several times cheaper than `deepcopy`.

        Bytewax asks for a snapshot of every changed key at each epoch end, recovery on or
        not; deep-copying a catalogue's co-occurrence dicts there cost a third of the run.
        """
        return snapshots.encode("models", self.state.to_snapshot())


@operator
def models(step_id: str, up: KeyedStream[ModelsIn], params: ModelParams) -> KeyedStream[ModelsOut]:
    """Segments and recommendations for every changed user, per batch.

    :arg up: Updates keyed on ONE constant key, so one logic owns the global models.
    :arg params: Model configuration; bad rules or clusterer params raise here, at flow build
        time (`RuleError` / `ValueError`), not on the first event.
    :returns: `UserOutput` per changed user per batch and `SegmentInfo` when a cluster's name
        first appears or changes, still under the constant key.
    """
    RuleSet(params.rules, params.rule_names())
    ModelsState.fresh(params)
    return op.stateful_batch("stateful_batch", up, lambda resume: ModelsLogic(params, resume))
