"""The models step: behavioural segments, rule segments and recommendations per changed user.

The models are global (a clusterer over all users, item co-occurrence and trending over all
events). Each worker holds a copy (`tailor.operators.replicas`): its `ModelsLogic` takes its own
worker's updates one Bytewax batch at a time, as the single models step did, and learns the
other workers' batches as they arrive (`learn_remote`). A burst of events from one user costs
one recommendation and one Redis write per batch, not one per event.

Batch boundaries must not change what ends up in Redis: a file replay, a live stream and a
resume after a crash all cut the same events into different batches. So the models learn at
positions fixed by the data, never by the batching: co-occurrence and trending from every
event, the clusterer from a user's learn points (docs/architecture.md, rule 1). A user's
output is computed at their last FULL update in the batch, from the models as they stood
after it (the user-state step makes each batch's last update full), so what a user is left
with depends only on the event order. A user joins a segment for per-segment trending at
their learn points too (`tailor.state.segments.news.Joined`). Everything else is seeded or
counting-only, and all rankings break ties by id.

The segment half (clusterer, names, RFM tiers, quality) is
`tailor.state.segments.segmentation.Segmentation`. It learns in one event-time order over all
source partitions, the same with one worker or several, and a user's output goes out at once
with the segments as they stand, then again, settled, when the update's place in that order is
final (docs/architecture.md, rules 2 and 3): what a user is left with in Redis does not depend
on batching, a crash, or how many workers ran.

What belongs to one user lives after this step, keyed by user (`tailor.operators.user_outputs`).
This step sends each user, per batch, one `ForUser` with what only the global models know, in
order: each update's timing, each interaction to test (before the models learn it), the draft
(variant, recommendations, segments) at its place, and settlements of earlier outputs; and
the lists for users without history that changed (`tailor.operators.fallbacks`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bytewax.operators import StatefulBatchLogic

from tailor.operators.fallbacks import FallbackCadence
from tailor.operators.metrics import (
    SEGMENT_DRIFT,
    SEGMENT_DRIFT_EVENTS,
    SEGMENT_LATE,
    SEGMENT_REFITS,
    SEGMENT_SILHOUETTE,
    SEGMENTS_LEARNED,
)
from tailor.operators.model_params import ModelParams
from tailor.operators.outputs import BatchNews, UserNews, features_of
from tailor.operators.records import (
    Aged,
    AgedDraft,
    Block,
    Drafted,
    Erasure,
    FallbackList,
    ForUser,
    Learned,
    Progress,
    Recommendation,
    SegmentInfo,
    SegmentModel,
    UserUpdate,
)
from tailor.state import snapshots
from tailor.state.recs.base import Interaction
from tailor.state.recs.live_recs import LiveRecs
from tailor.state.segments.news import AgedSettled, Joined, News, Published, Settled
from tailor.state.segments.quality import StreamingSilhouette
from tailor.state.segments.rfm_tiers import RFMTiers
from tailor.state.segments.segmentation import Segmentation
from tailor.state.segments.segmenter import Segmenter

__all__ = [
    "ModelsIn",
    "ModelsLogic",
    "ModelsOut",
    "ModelsState",
]

ModelsOut = ForUser | SegmentInfo | SegmentModel | Erasure | FallbackList
#: Another worker's batch as a replica learns it (`tailor.operators.replicas.Copy`).
RemoteIn = Learned | Erasure | Block | Progress


@dataclass
class ModelsState:
    """Everything the step learns; pickled whole by Bytewax snapshots."""

    segments: Segmentation
    recs: LiveRecs
    #: Interactions sent to be tested so far: each test's place in the learning order.
    tested: int = 0

    @classmethod
    def fresh(cls, params: ModelParams) -> ModelsState:
        """Empty models as `params` configure them (`[segments]`, `[recs]`)."""
        seg, rec = params.segments, params.recs
        segmenter = Segmenter(
            seg.clusterer,
            seg.params,
            params.features,
            seg.devices,
            seg.seed,
            transforms=params.transforms,
            warmup=seg.warmup,
            rename_distance=seg.rename_distance,
            sample_size=seg.sample_size,
        )
        segments = Segmentation(
            segmenter,
            rfm=RFMTiers(sample_size=params.rfm_sample_size, seed=seg.seed),
            silhouette=StreamingSilhouette(seed=seg.seed),
            learn_every=seg.learn_every,
            publish_every=seg.publish_every,
            drift_every=params.drift_every,
            reorder_s=seg.reorder_s,
            origins=params.origins,
            refit_every_s=seg.refit_every_s,
            min_share=seg.min_share,
            horizons=dict(params.horizons),
        )
        recs = LiveRecs.build(
            k=rec.k,
            shares=rec.variant_shares,
            models=rec.variant_models,
            settings=params.rec_settings,
            salt=rec.variant_salt,
            exclude_seen=rec.exclude_seen,
            max_per_category=rec.max_per_category,
        )
        return cls(segments=segments, recs=recs)

    def to_snapshot(self) -> dict[str, Any]:
        """Plain data (`tailor.state.snapshots`), settings included: a resume goes on as it ran."""
        return {
            "segments": self.segments.to_snapshot(),
            "recs": self.recs.to_snapshot(),
            "tested": self.tested,
        }

    @classmethod
    def from_snapshot(cls, data: Mapping[str, Any]) -> ModelsState:
        """The provisional outputs an earlier format-1 store holds here are left behind: they
        live in the outputs step now (their settlements then find nothing to correct)."""
        return cls(
            segments=Segmentation.from_snapshot(data["segments"]),
            recs=LiveRecs.from_snapshot(data["recs"]),
            tested=data.get("tested", 0),
        )


ModelsIn = UserUpdate | Erasure | Progress | Block | Aged


#: A draft before its segments: the news it goes in, its place there, update, variant, list.
_Pending = tuple[UserNews, int, UserUpdate, str, tuple[Recommendation, ...]]


class ModelsLogic(StatefulBatchLogic[ModelsIn, ModelsOut, bytes]):
    """Learn event by event; at each user's last full update in the batch, draft their output
    (variant, recommendations), and send each user's news with their segments at the end.

    A `SegmentInfo` comes out in the batch where its cluster's name changed, before the
    batch's news; users' news come out in the order of their first update in the batch.
    """

    def __init__(
        self, params: ModelParams, resume_state: ModelsState | bytes | None = None
    ) -> None:
        self.params = params
        self.state: ModelsState
        if isinstance(resume_state, bytes):
            self.state = ModelsState.from_snapshot(snapshots.decode(resume_state, "models"))
        else:
            self.state = resume_state if resume_state is not None else ModelsState.fresh(params)
        self._drift_events_reported = self.state.segments.drift.events  # counted before
        self._refits_reported = self.state.segments.segmenter.refits
        self._late_reported = self.state.segments.order.late
        #: Sends segment news and the lists for users without history (one replica of
        #: several does: `tailor.operators.replicas`); None: not known yet.
        self.publishes: bool | None = True
        self.fallbacks = FallbackCadence(params.recs.fallback_length, params.recs.fallback_every_s)

    def on_batch(self, values: list[ModelsIn]) -> tuple[Iterable[ModelsOut], bool]:
        erased_at = {v.user_id: i for i, v in enumerate(values) if isinstance(v, Erasure)}
        last_full = {
            u.user_id: u for u in values if isinstance(u, UserUpdate) and u.features is not None
        }
        out, users = list[ModelsOut](), BatchNews()
        settled: list[Settled | AgedSettled] = []
        pending: list[_Pending] = []
        for index, u in enumerate(values):
            if isinstance(u, Erasure):
                users.erase(self._erase(u))
                continue
            if isinstance(u, Aged):  # learns nothing; drafted where its place is reached
                aged = self.state.segments.observe_aged(
                    u.user_id, u.version, u.at, u.profile, u.device, u.stamp
                )
                settled += self._segment_news(aged, out)
                continue
            if isinstance(u, Block):
                self.state.recs.block(u.item_id, u.blocked)
                continue
            if isinstance(u, Progress):
                settled += self._segment_news(self.state.segments.progress(u.stamp, u.ts), out)
                continue
            news = users.news(u.user_id)
            news.updates.append((u.read_at, u.event.ts))
            tested = self._learn(u)
            if tested is not None:  # tested before learned: the list was drafted without it
                news.tests.append((len(news.updates) - 1, tested, self.state.tested))
                self.state.tested += 1
            emit = last_full.get(u.user_id) is u and erased_at.get(u.user_id, -1) < index
            learned = self.state.segments.observe(
                u.user_id, u.version, u.event.ts, u.event.type, u.features, u.device, u.stamp, emit
            )
            settled += self._segment_news(learned, out)
            if emit:  # the last full update, not erased later in this batch
                variant, served = self._recommend(u)
                pending.append((news, len(news.updates) - 1, u, variant, served))
        self._finish(pending, settled, users)
        out.extend(users.frozen())
        out.extend(self.fallbacks.due(self.state.recs, self.publishes))
        return out, StatefulBatchLogic.RETAIN

    def learn_remote(self, values: Sequence[RemoteIn]) -> list[ModelsOut]:
        """Another replica's batch (`tailor.operators.replicas`): learn it, serve and test nobody.

        The recommenders learn its interactions as one batch (`LiveRecs.learn_many`: cheap,
        which is what lets replicas scale), taken before an erasure that must see them; the
        segment model observes each update in order. The event-time order it moves may
        settle this replica's own users' outputs."""
        out: list[ModelsOut] = []
        settled: list[Settled | AgedSettled] = []
        segments = self.state.segments
        weight_of = self.params.rec_settings.weight_of
        events: list[Interaction] = []
        previous: list[tuple[str, ...]] = []
        for u in values:
            if isinstance(u, Learned):
                if u.item_id is not None:
                    events.append(
                        Interaction(u.user_id, u.item_id, u.ts, weight_of(u.type), u.categories)
                    )
                    previous.append(u.previous)
                learned = segments.observe(
                    u.user_id, u.version, u.ts, u.type, u.features, u.device, u.stamp
                )
                settled += self._segment_news(learned, out)
                continue
            if isinstance(u, Erasure):
                self._learn_many(events, previous)
                self._erase(u)  # its own replica forwards it
            elif isinstance(u, Block):
                self.state.recs.block(u.item_id, u.blocked)
            else:
                settled += self._segment_news(segments.progress(u.stamp, u.ts), out)
        self._learn_many(events, previous)
        users = BatchNews()
        self._finish([], settled, users)
        out.extend(users.frozen())
        out.extend(self.fallbacks.due(self.state.recs, self.publishes))
        return out

    def _learn_many(self, events: list[Interaction], previous: list[tuple[str, ...]]) -> None:
        """Learn and clear the interactions gathered so far from a remote batch."""
        if events:
            self.state.recs.learn_many(events, previous)
            events.clear()
            previous.clear()

    def on_eof(self) -> tuple[Iterable[ModelsOut], bool]:
        """A bounded input ended: learn and settle what the event-time order still holds."""
        out: list[ModelsOut] = []
        users = BatchNews()
        self._finish([], self._segment_news(self.state.segments.flush(), out), users)
        out.extend(users.frozen())
        out.extend(self.fallbacks.due(self.state.recs, self.publishes, force=True))
        return out, StatefulBatchLogic.RETAIN

    def notify_at(self) -> datetime | None:
        """When lists held back by `recs.fallback_every_s` are due (`FallbackCadence`)."""
        return self.fallbacks.wake_at(self.state.recs, self.publishes)

    def on_notify(self) -> tuple[Iterable[ModelsOut], bool]:
        return self.fallbacks.due(self.state.recs, self.publishes), StatefulBatchLogic.RETAIN

    def _finish(
        self, pending: list[_Pending], settled: list[Settled | AgedSettled], users: BatchNews
    ) -> None:
        """Fill in the drafts' segments, then pass on the settlements of earlier outputs.

        A draft whose place in event-time order was already reached in this batch is settled
        at once; the others get the segments as they stand and wait to be settled (one
        assignment each way, which is why segments are filled in here, at the end). The
        user's outputs step applies a user's draft before their settlements, as this step did
        when it kept the provisional outputs: a settlement of an older version then finds a
        newer output and does nothing.
        """
        by_update = {(s.user_id, s.version): s for s in settled if isinstance(s, Settled)}
        for news, at, last, variant, served in pending:
            done = by_update.pop((last.user_id, last.version), None)
            if done is None:
                segment, name, rfm = self.state.segments.assign(features_of(last), last.device)
            else:
                segment, name, rfm = done.segment, done.segment_name, done.rfm_segment
            news.draft = Drafted(last, variant, served, segment, name, rfm, done is not None)
            news.drafted_at = at
        for s in by_update.values():
            settlement = (s.version, s.segment, s.segment_name, s.rfm_segment)
            users.news(s.user_id).settlements.append(settlement)
        for a in settled:
            if isinstance(a, AgedSettled):
                variant = self.state.recs.variants.assign(a.user_id)
                profile = {**a.profile, "variant": variant}
                draft = AgedDraft(
                    a.version, a.at, profile, a.segment, a.segment_name, a.rfm_segment
                )
                users.news(a.user_id).aged.append(draft)

    def _erase(self, erasure: Erasure) -> Erasure:
        """Forget the user here too: their co-occurrence contributions, their RFM sample entry.

        Trending scores and cluster centres are aggregates over everyone, decaying with
        time: nothing in them points back at one user, so they are left as they are. The
        erasure goes on to the user's outputs step, which forgets the rest.
        """
        self.state.recs.forget(erasure.user_id, erasure.history)
        self.state.segments.forget(erasure.user_id)
        return erasure

    def _learn(self, u: UserUpdate, own: bool = True) -> str | None:
        """The recommenders learn from every event with an item, in arrival order, weighted
        by its type; returns the item to test against the user's last list, if any (a repeat
        of an item in the history could not be a hit). The hybrid's self-test probes only
        this replica's `own` users: another replica probes theirs."""
        event, item = u.event, u.event.item_id
        if item is None:
            return None
        history = u.history
        previous = history[:-1] if history and history[-1] == item else history
        weight = self.params.rec_settings.weight_of(event.type)
        categories = tuple(event.category or ())
        interaction = Interaction(u.user_id, item, event.ts, weight, categories)
        self.state.recs.learn(interaction, previous, u.purchased, probe=own)
        return None if item in previous else item

    def _segment_news(self, news: list[News], out: list[ModelsOut]) -> list[Settled | AgedSettled]:
        """Publish what the segment model published, move users to the segments they joined
        (per-segment trending); return the settlements and aged profiles for `_finish` (a
        settlement may concern an output of this very batch, not sent yet)."""
        settled: list[Settled | AgedSettled] = []
        published: list[Published] = []
        for n in news:
            if isinstance(n, Settled | AgedSettled):
                settled.append(n)
            elif isinstance(n, Joined):
                self.state.recs.assign_segment(n.user_id, n.segment)
            else:
                published.append(n)
        if published and self.publishes:
            self._publish(published, out)
        late = self.state.segments.order.late
        if late > self._late_reported:
            SEGMENT_LATE.inc(late - self._late_reported)
            self._late_reported = late
        return settled

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
        if segments.segmenter.refits > self._refits_reported:
            SEGMENT_REFITS.inc(segments.segmenter.refits - self._refits_reported)
            self._refits_reported = segments.segmenter.refits

    def _recommend(self, u: UserUpdate) -> tuple[str, tuple[Recommendation, ...]]:
        """Variant and recommendations at the user's last update, from the models as they
        stand right after it (a light update here is a wiring error: `features_of`)."""
        features_of(u)
        return self.state.recs.recommend(u.user_id, u.history, u.purchased, u.event.ts)

    def snapshot(self) -> bytes:
        """The state as plain data in a versioned envelope (`tailor.state.snapshots`): an immutable
        copy, several times cheaper than `deepcopy` (asked for at every epoch end)."""
        return snapshots.encode("models", self.state.to_snapshot())
