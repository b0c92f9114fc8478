"""The messages that walk the dataflow, one frozen type per hop.

source → `RawRecord` → validate → `Event` (or `DeadLetter`) → per-user state → `UserUpdate`
→ models → `ForUser` (per user) / `SegmentInfo` / `FallbackList` → per-user outputs →
`UserOutput` (and `Scores` → live quality → `QualityReport`, `Moves` → churn →
`ChurnReport`) → Redis sink. Erasure walks the same way: control stream → `Forget` →
per-user state → `Erasure` → models → per-user outputs → `Erasure` → sink.

Kept in one module so every step's input and output type can be read in one place; each
type is small and picklable because Bytewax moves it between workers and snapshots.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tailor.state.crossing import crossing
from tailor.state.profile.event import Event

# The live recommenders' records travel to the sink as they are.
from tailor.state.recs.live_quality import QualityReport as QualityReport
from tailor.state.recs.live_quality import Scored
from tailor.state.recs.live_recs import Recommendation as Recommendation

# A source batch's place in its partition, carried by every record derived from it.
from tailor.state.segments.churn import ChurnReport as ChurnReport
from tailor.state.segments.event_order import Stamp as Stamp
from tailor.state.segments.ids import membership_ids

# The segment model's own records travel to the sink as they are.
from tailor.state.segments.news import SegmentInfo as SegmentInfo
from tailor.state.segments.news import SegmentModel as SegmentModel


@crossing
@dataclass(frozen=True, slots=True)
class RawRecord:
    """A payload exactly as a source read it.

    `read_at` is the wall-clock time the worker read it: the start of the event-to-Redis
    latency measurement. `origin`/`offset` locate it (stream key and entry id, or file and
    line) so a dead letter can point back at its input. `stamp` places it in its partition's
    sequence of batches (`tailor.state.segments.event_order`); a record with an `IDLE`/`END` stamp
    is a partition's announcement, not a payload.

    `size` and `sha1` are set when the source kept only a prefix of a payload longer than
    `validation.max_payload_bytes` (`tailor.operators.payload_limits`): the whole payload's length
    and SHA-1 hex digest. Such a record is always refused as ``too_large``: its prefix may
    even parse, but it is not what the producer sent.
    """

    payload: bytes
    origin: str
    offset: str
    read_at: float
    stamp: Stamp | None = None
    size: int | None = None
    sha1: str | None = None


@crossing
@dataclass(frozen=True, slots=True)
class Accepted:
    """A valid event plus the time its payload was read (for latency), and where it was read
    (`origin`/`offset` as in `RawRecord`): an opted-out user's raw entry can be deleted, and a
    late event's dead letter points back at its input, which is also the letter's identity
    (`tailor.operators.redis.deadletters`). Empty when unknown."""

    event: Event
    read_at: float
    stamp: Stamp | None = None
    origin: str = ""
    offset: str = ""


@crossing
@dataclass(frozen=True, slots=True)
class Progress:
    """A stamped record that brings the models nothing to learn (refused, dropped, or a
    partition's announcement): it still counts towards its batch, so the event-time order
    knows the batch is complete (`tailor.state.segments.event_order`). `ts` is its event time if it
    had one."""

    stamp: Stamp
    ts: float | None = None


@crossing
@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A refused input: the raw payload and a machine-readable reason
    (`tailor.state.profile.event.REASONS`).

    A ``too_large`` letter keeps only a prefix of its payload, so a flood of huge inputs
    cannot fill the dead-letter stream: `size` is then the whole payload's length in bytes
    and `sha1` its SHA-1 hex digest (both None when `payload` is the whole input).
    """

    reason: str
    detail: str
    payload: bytes
    origin: str
    offset: str
    stamp: Stamp | None = None
    size: int | None = None
    sha1: str | None = None


@crossing
@dataclass(frozen=True, slots=True)
class InputDeletion:
    """A raw input entry to delete: an opted-out user's event, dropped by the state step.

    `origin`/`offset` are the record's (stream key and entry id); the Redis sink deletes the
    entry only from the event streams under its prefix (a replayed file has none to delete).
    """

    origin: str
    offset: str


@crossing
@dataclass(frozen=True, slots=True)
class UserUpdate:
    """Per-user state after one accepted event, as the models step needs it.

    `history` holds the user's recent item ids, oldest first, including this event's item
    (co-occurrence learns from it at every event). The profile fields (`features`, `device`,
    `referrer`, `top_categories`, `purchased`) cost more to build than everything else in
    the step, and the models step reads them only where it learns the clusterer
    or writes the user's output (their last update in a batch). So the user-state step fills
    them only there: a *full* update has `features`; a *light* one has `features=None`, and
    the profile fields keep their empty defaults. The last accepted update of a user in each
    of the step's batches is always full, and so is each update at a clusterer learn point.
    """

    user_id: str
    version: int
    event: Event
    read_at: float
    history: tuple[str, ...]
    features: dict[str, float] | None = None
    device: str | None = None
    referrer: str | None = None
    top_categories: tuple[tuple[str, float], ...] = ()
    purchased: frozenset[str] = frozenset()
    stamp: Stamp | None = None

    @property
    def full(self) -> bool:
        """True when the profile fields are filled in (see the class docstring)."""
        return self.features is not None


@crossing
@dataclass(frozen=True, slots=True)
class Tick:
    """The stream's clock crossed `at` (an aging boundary) and the user's newest event is
    older: re-evaluate the user as of `at` (`tailor.operators.aging`). Stamped as one more record of
    the source batch that moved the clock, so the models count it like an event."""

    user_id: str
    at: float
    stamp: Stamp | None = None


@crossing
@dataclass(frozen=True, slots=True)
class Aged:
    """A user's profile aged to `at` with no new event (`UserState.aged_features`): the
    models step assigns its segments at `at`'s place in event-time order and learns nothing.
    `profile` is what the sink stores besides the reserved fields (features, device, ...)."""

    user_id: str
    version: int
    at: float
    profile: dict[str, Any]
    device: str | None
    stamp: Stamp | None = None


@crossing
@dataclass(frozen=True, slots=True)
class Learned:
    """One update as another worker's model replica learns it (`tailor.operators.replicas`).

    Only what learning reads: the item and its categories, the `previous` items the
    recommenders pair it with (cut to the longest window they use), and `features` only at
    the segment model's learn points (`tailor.state.segments.segmentation.learn_point`). A replica
    copy of a whole `UserUpdate` (profile, 50-item history, purchases) cost ~5x as much to cross.
    """

    user_id: str
    version: int
    ts: float
    type: str
    item_id: str | None
    categories: tuple[str, ...]
    previous: tuple[str, ...]
    features: dict[str, float] | None
    device: str | None
    stamp: Stamp | None


@crossing
@dataclass(frozen=True, slots=True)
class UserOutput:
    """Everything the sink writes for one changed user in one batch.

    `version` orders writes for the same user (a replayed, older write never wins);
    `read_ats` / `event_times` are one per event folded into this output, for latency.
    """

    user_id: str
    version: int
    updated_at: float
    profile: dict[str, Any]
    segment: str
    segment_name: str
    rule_segments: tuple[str, ...]
    recs: tuple[Recommendation, ...]
    rfm_segment: str = ""  # RFM tier id ("champions", ...), "" for non-buyers / warm-up
    read_ats: tuple[float, ...] = field(default=())
    event_times: tuple[float, ...] = field(default=())
    #: The segments are settled (final for this version): the sink lets this output rewrite a
    #: stored output of the same version that differs (a correction), never a provisional one.
    settled: bool = False
    #: 0 for an event's output; else the aging boundary this output is as of (`Aged`): it
    #: keeps its version, follows the outputs of that version in the sink's order (version,
    #: aged_to), and leaves the stored recommendations as they are (`recs` is empty).
    aged_to: float = 0.0

    @property
    def memberships(self) -> tuple[str, ...]:
        """The segment ids (sets) this output puts the user in; stored with the profile."""
        return membership_ids(self.segment, self.rfm_segment, self.rule_segments)


@crossing
@dataclass(frozen=True, slots=True)
class Forget:
    """A request to erase a user (`tailor forget`, the opt-out set, or `consent: false`).

    `opt_out` also stops all later processing of the user; `reason` says which path asked
    (``forget``, ``opt_out``, ``consent``) for the erasure notice and the metric.
    """

    user_id: str
    reason: str
    opt_out: bool = False


@crossing
@dataclass(frozen=True, slots=True)
class Block:
    """An item to stop (or, with `blocked=False`, resume) recommending (`tailor block`)."""

    item_id: str
    blocked: bool = True


@crossing
@dataclass(frozen=True, slots=True)
class Erasure:
    """A user's state is gone from the worker; downstream removes what it derived from it.

    `history` is the user's recent items, so the models step can take back the user's
    co-occurrence contributions (as far as that history reaches).
    """

    user_id: str
    reason: str
    history: tuple[str, ...] = ()


@crossing
@dataclass(frozen=True, slots=True)
class Drafted:
    """What only the global models can say about a user's output: recommendations, variant
    and segments, at `update` (the user's last full update of the models' batch).

    `settled` is True when the update's place in event-time order was reached in the same
    batch (the segments are final); `rfm_segment` is None for a non-buyer.
    """

    update: UserUpdate
    variant: str
    recs: tuple[Recommendation, ...]
    segment: str
    segment_name: str
    rfm_segment: str | None
    settled: bool


#: A settlement of an earlier output: (version, segment, segment name, RFM tier or None).
Settlement = tuple[int, str, str, str | None]


@crossing
@dataclass(frozen=True, slots=True)
class ForUser:
    """What the models step tells one user's outputs step about one of its batches, in order.

    `updates` are the (read_at, event time) of each of the user's updates the models took,
    in arrival order (for latency). `tests` are the interactions to score before the models
    learned them: (index in `updates`, item, place in the models' learning order). `draft`
    sits at index `drafted_at` (-1: none): tests at or before it meet the list sent before,
    later ones the draft's. `settlements` concern outputs of earlier batches and apply after
    the draft. An erasure in the batch splits a user's news into a record before it and one
    after it, with the `Erasure` in between.
    """

    user_id: str
    updates: tuple[tuple[float, float], ...] = ()
    tests: tuple[tuple[int, str, int], ...] = ()
    draft: Drafted | None = None
    drafted_at: int = -1
    settlements: tuple[Settlement, ...] = ()
    #: Aged profiles settled in this batch, oldest first; they apply after the settlements.
    aged: tuple[AgedDraft, ...] = ()


@crossing
@dataclass(frozen=True, slots=True)
class AgedDraft:
    """An `Aged` profile with its segments at `at`'s place in event-time order."""

    version: int
    at: float
    profile: dict[str, Any]
    segment: str
    segment_name: str
    rfm_segment: str | None


@crossing
@dataclass(frozen=True, slots=True)
class FallbackList:
    """A list for users without history, as the models step publishes it
    (`tailor.state.recs.fallbacks`): `kind` is ``popular``, ``trending``, ``segment`` or
    ``category``, `group` the segment id or category ("" for the first two).

    `version` is the list's place in the models' learning order (it only grows, and names
    one list: a replay writes the same bytes); `at` the event time its scores are decayed
    to; `items` (item id, score), best first, blocked items already left out.
    """

    kind: str
    group: str
    version: int
    at: float
    items: tuple[tuple[str, float], ...]


@crossing
@dataclass(frozen=True, slots=True)
class Scores:
    """Interactions scored against the list last sent to their user
    (`tailor.state.recs.live_quality`)."""

    scored: tuple[Scored, ...]


@crossing
@dataclass(frozen=True, slots=True)
class Moves:
    """Users moved between settled cluster segments, one event-time hour (epoch hours) per
    move (`tailor.state.segments.churn`)."""

    hours: tuple[int, ...]
