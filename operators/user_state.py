"""The per-user state step: dedup, Flink-style lateness, then one `UserUpdate` per event.

Keyed by user id upstream (`op.key_on`), so one `UserStateLogic` holds one user's
`UserState` and Bytewax snapshots it for recovery. Policies live here, state in
`tailor.state.profile.user`:

* a repeated `event_id` within `dedup_horizon_s` of event time is dropped silently (sources are
  at-least-once; a replay after recovery re-delivers what the snapshot already counted);
* an event older than the user's watermark (newest event time) by more than
  `allowed_lateness_s` is dead-lettered as ``late`` and leaves the state untouched, so a
  straggler can never rewrite a session that was already published;
* everything else updates the state and emits it as the models step needs it: in full
  (`UserUpdate.features` and the rest of the profile) only where the models read it, at
  clusterer learn points and at the user's last update of each batch; light otherwise;
* an opted-out user's event is dropped, and its raw entry is handed to the sink to delete
  (`InputDeletion`): the opt-out is a promise not to keep their data, raw input included;
* a user with no events for `ttl_s` of processing time is forgotten (Flink's state TTL,
  processing-time flavour): the logic is discarded, so memory follows active users, not all
  users ever seen. A user who comes back after that starts afresh.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import bytewax.operators as op
import orjson
from bytewax.dataflow import operator
from bytewax.operators import KeyedStream, StatefulBatchLogic

from tailor.flows.settings import StateSettings
from tailor.operators.metrics import ACTIVE_USERS, DEAD_LETTERS, ERASURES, EVENTS, EXPIRED_USERS
from tailor.operators.progress import keep_stamp
from tailor.operators.records import (
    Accepted,
    Aged,
    DeadLetter,
    Erasure,
    Forget,
    InputDeletion,
    Progress,
    Stamp,
    Tick,
    UserUpdate,
)
from tailor.state import snapshots
from tailor.state.profile.event import Event, event_to_dict
from tailor.state.profile.user import DEFAULT_INTERACTION_TYPES, DEFAULT_VIEW_TYPES, UserState
from tailor.state.segments.segmentation import learn_point

__all__ = ["UserStateLogic", "UserStateParams", "user_state"]

#: A late letter's origin when its input's place is unknown (events built in tests); its
#: offset is then the event id.
ORIGIN = "user_state"


@dataclass(frozen=True)
class UserStateParams:
    """Configuration of the per-user state step: the `[state]` section whole, plus what the
    step needs from elsewhere (`tailor.flows.worker.user_state_params` builds it)."""

    settings: StateSettings
    #: `segments.learn_every` (`ModelParams.segments`): the models step learns the clusterer
    #: from a user's 1st, (1 + n·learn_every)-th, ... update and reads the profile there, so
    #: those updates are full.
    learn_every: int
    #: Users (stored ids) in the opt-out set when the worker started: a state built in this
    #: process (fresh, or resumed from a snapshot) of a user in it is an opt-out's tombstone
    #: from its first batch on. The control stream's replay of the set races the events at
    #: start-up, and an event processed before it arrived would stay in the input streams.
    opted_out: frozenset[str] = frozenset()
    view_types: frozenset[str] = DEFAULT_VIEW_TYPES
    interaction_types: frozenset[str] = DEFAULT_INTERACTION_TYPES

    def __post_init__(self) -> None:
        if self.learn_every < 1:
            raise ValueError(f"learn_every must be >= 1, got {self.learn_every}")

    def new_state(self) -> UserState:
        """A fresh, empty state for a user seen for the first time."""
        return UserState(**self.state_settings())

    def state_settings(self) -> dict[str, Any]:
        """`UserState`'s parameters (a resumed user's state takes them from here too)."""
        state = self.settings
        return dict(
            session_gap_s=state.session_gap_s,
            windows_s=state.windows_s,
            rfm_window_s=state.rfm_window_s,
            interest_halflife_s=state.interest_halflife_s,
            top_categories=state.top_categories,
            history_len=state.history_len,
            max_purchased=state.max_purchased,
            dedup_horizon_s=state.dedup_horizon_s,
            view_types=self.view_types,
            interaction_types=self.interaction_types,
        )


UserStateOut = UserUpdate | DeadLetter | Erasure | Progress | InputDeletion | Aged
UserStateIn = Accepted | Forget | Tick


class UserStateLogic(StatefulBatchLogic[UserStateIn, UserStateOut, bytes]):
    """One user's state inside a Bytewax `stateful_batch` operator.

    A batch, not an item at a time, because only the batch knows which update is the user's
    last one in it: that one, and each clusterer learn point, carries the full profile; the
    others are light (see `UserUpdate`), which halves this step's cost.

    `ACTIVE_USERS` counts logics alive in this process: up on every build, new user or resumed
    from a snapshot (a restarted process starts the gauge at 0 again), down on TTL expiry.
    """

    def __init__(
        self,
        params: UserStateParams,
        resume_state: UserState | bytes | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.params = params
        self.clock = clock
        # A resumed user gets a full TTL again: the wall clock of the crash is not known.
        self.expires_at = clock() + params.settings.ttl_s
        self._timer: datetime | None = None  # the wake-up Bytewax holds; see `notify_at`
        self.state: UserState
        self._unchecked = True  # against `UserStateParams.opted_out`, at the first batch
        if isinstance(resume_state, bytes):
            data = snapshots.decode(resume_state, "user")
            self.state = UserState.from_snapshot(data, **params.state_settings())
        else:
            self.state = params.new_state() if resume_state is None else resume_state
        ACTIVE_USERS.inc()

    def on_batch(self, values: list[UserStateIn]) -> tuple[Iterable[UserStateOut], bool]:
        """Every stamped event or tick yields one `UserUpdate`, `Aged` or `Progress` (the
        models step counts them to know a source batch is complete), plus a dead letter if
        late. A tick is not activity: it keeps no user alive for the TTL."""
        out: list[UserStateOut] = []
        if self._unchecked:
            self._unchecked = False
            if values:
                out += self._opt_out_at_start(_user_of(values[0]))
        counts: dict[tuple[str, str], int] = {}  # (type, outcome): counted once per batch
        last = -1  # index in `out` of the newest accepted update
        active = False
        for value in values:
            active = active or not isinstance(value, Tick)
            for item in self._one(value, counts):
                if isinstance(item, Erasure):
                    last = -1  # nothing before the erasure may be published any more
                elif isinstance(item, UserUpdate):
                    last = len(out)
                out.append(item)
        if last >= 0:
            light = out[last]
            if isinstance(light, UserUpdate) and not light.full:
                # rejected values leave the state untouched, so it is still the state
                # right after that last accepted event
                out[last] = _full_update(self.state, light.event, light.read_at, light.stamp)
        _count(counts)
        if active:
            self.expires_at = self.clock() + self.params.settings.ttl_s
        if self.state.version == 0 and not self.state.opted_out:
            ACTIVE_USERS.dec()  # erased and nothing since: nothing left to keep
            return out, StatefulBatchLogic.DISCARD
        return out, StatefulBatchLogic.RETAIN

    def _one(self, value: UserStateIn, counts: dict[tuple[str, str], int]) -> list[UserStateOut]:
        """One input's outputs; its stamp kept (`keep_stamp`) whatever this decides to drop."""
        if isinstance(value, Tick):
            aged = self._age(value)
            items: list[UserStateOut] = [aged] if aged is not None else []
            return keep_stamp(value.stamp, None, items)  # a tick moves no clock
        if isinstance(value, Forget):
            return [self._erase(value)]  # a control request: unstamped
        if value.event.consent is False:
            items = [self._erase(value)]
        else:
            item = self._accept(value, counts)
            items = [item] if item is not None else []
        return keep_stamp(value.stamp, value.event.ts, items)

    def _opt_out_at_start(self, user: str) -> list[Erasure]:
        """Apply the opt-out set read at start-up (`UserStateParams.opted_out`).

        A fresh state just becomes an opt-out's tombstone. A state resumed from a snapshot
        taken before the opt-out holds data: it is erased now, since the control entry that
        asked for it may be gone (deleted once the erasure is done:
        `tailor.operators.redis.control`), and the events replayed after the snapshot must not
        re-create the user.
        """
        if self.state.opted_out or user not in self.params.opted_out:
            return []
        if self.state.version == 0:
            self.state.opted_out = True
            return []
        return [self._erase(Forget(user, "opt_out", opt_out=True))]

    def _erase(self, value: Accepted | Forget) -> Erasure:
        """Drop everything kept about the user; an opt-out keeps only the fact of it.

        `consent: false` on an event counts as an opt-out; so does a `Forget` from the
        opt-out set. Later events of an opted-out user are dropped (outcome ``opted_out``).
        """
        if isinstance(value, Forget):
            user, reason, opt_out = value.user_id, value.reason, value.opt_out
        else:
            user, reason, opt_out = value.event.user_id, "consent", True
        history = self.state.history
        self.state = self.params.new_state()
        self.state.opted_out = opt_out or self.state.opted_out
        ERASURES.labels(reason).inc()
        return Erasure(user, reason, history)

    def _accept(
        self, value: Accepted, counts: dict[tuple[str, str], int]
    ) -> UserUpdate | DeadLetter | InputDeletion | None:
        """Opt-out, dedup, lateness, then the state update: a light update, full at learn
        points and purchases (the models step learns RFM tiers from every purchase)."""
        event = value.event
        state = self.state
        if state.opted_out:
            key = (event.type, "opted_out")
            counts[key] = counts.get(key, 0) + 1
            return InputDeletion(value.origin, value.offset) if value.origin else None
        if state.is_duplicate(event):
            key = (event.type, "duplicate")
            counts[key] = counts.get(key, 0) + 1
            return None
        lag = state.lag(event)
        if lag > self.params.settings.allowed_lateness_s:
            key = (event.type, "late")
            counts[key] = counts.get(key, 0) + 1
            DEAD_LETTERS.labels("late").inc()
            return _late_letter(value, lag)
        state.update(event)
        key = (event.type, "accepted")
        counts[key] = counts.get(key, 0) + 1
        if learn_point(state.version, event.type, self.params.learn_every):
            return _full_update(state, event, value.read_at, value.stamp)
        return UserUpdate(
            event.user_id, state.version, event, value.read_at, state.history, stamp=value.stamp
        )

    def _age(self, tick: Tick) -> Aged | None:
        """The profile as of the tick's boundary, when the user's newest event is older;
        else (a newer event came first, an erased or unknown user) nothing."""
        state = self.state
        if state.version == 0 or state.opted_out or (state.watermark or 0.0) >= tick.at:
            return None
        profile = _profile(state, state.aged_features(tick.at))
        return Aged(tick.user_id, state.version, tick.at, profile, state.device, tick.stamp)

    def notify_at(self) -> datetime | None:
        """When this user's state expires (wall clock); never for an opt-out's tombstone."""
        if self.params.settings.ttl_s <= 0 or self.state.opted_out:
            return None
        # Re-arm only when the expiry moved by a tenth of the TTL: handing Bytewax a new time
        # after every batch of every user cost ~4x the p99 latency on interleaved traffic.
        # An early wake-up is harmless: `on_notify` re-checks the real expiry.
        slack = self.params.settings.ttl_s / 10
        if self._timer is None or self.expires_at - self._timer.timestamp() > slack:
            self._timer = datetime.fromtimestamp(self.expires_at, UTC)
        return self._timer

    def on_notify(self) -> tuple[Iterable[UserStateOut], bool]:
        """Expire the user if still inactive; Bytewax may wake us early, so check again."""
        ttl_s = self.params.settings.ttl_s
        if ttl_s <= 0 or self.state.opted_out or self.clock() < self.expires_at:
            self._timer = None  # woken early: re-arm at the real expiry, never at a past time
            return [], StatefulBatchLogic.RETAIN
        ACTIVE_USERS.dec()
        EXPIRED_USERS.inc()
        return [], StatefulBatchLogic.DISCARD

    def snapshot(self) -> bytes:
        """The state as plain data in a versioned envelope (`tailor.state.snapshots`): an immutable
        copy (Bytewax stores it later, while `on_batch` keeps mutating the live one), and
        cheaper than `deepcopy`, which Bytewax would pickle again. The settings are not in
        it: a resume takes them from the configuration."""
        return snapshots.encode("user", self.state.to_snapshot())


def _user_of(value: UserStateIn) -> str:
    return value.event.user_id if isinstance(value, Accepted) else value.user_id


def _late_letter(value: Accepted, lag: float) -> DeadLetter:
    """The payload is the event as accepted (pseudonymized, if so configured); origin and
    offset are those of its input, so a replay refuses it under the same identity."""
    event = value.event
    return DeadLetter(
        reason="late",
        detail=f"{_seconds(lag)}s behind watermark",
        payload=orjson.dumps(event_to_dict(event)),
        origin=value.origin or ORIGIN,
        offset=value.offset or event.event_id,
    )


def _seconds(value: float) -> str:
    """Plain decimal seconds, never exponent notation: '301', '300.5'."""
    return f"{value:.3f}".rstrip("0").rstrip(".")


def _profile(state: UserState, features: dict[str, float]) -> dict[str, object]:
    """What the sink stores of an aged user besides the reserved fields, as an event's
    output has it (`tailor.operators.outputs`): the last event's type and time stay the last
    event's."""
    return {
        "features": features,
        "device": state.device,
        "referrer": state.referrer,
        "top_categories": [[cat, score] for cat, score in state.top_interests()],
        "last_event_type": None if state.last_event is None else state.last_event[0],
        "last_event_ts": None if state.last_event is None else state.last_event[1],
    }


def _full_update(state: UserState, event: Event, read_at: float, stamp: Stamp | None) -> UserUpdate:
    return UserUpdate(
        user_id=event.user_id,
        version=state.version,
        event=event,
        read_at=read_at,
        history=state.history,
        features=state.features(),
        device=state.device,
        referrer=state.referrer,
        top_categories=state.top_interests(),
        purchased=state.purchased,
        stamp=stamp,
    )


#: `EVENTS` children by (type, outcome): `labels()` costs ~2 µs, a dict lookup ~50 ns.
_EVENT_COUNTERS: dict[tuple[str, str], Any] = {}


def _count(counts: dict[tuple[str, str], int]) -> None:
    """Add a batch's counts: one locked `inc` per label pair, not one per event.

    Types are bounded by validation, so the cache of label children is bounded too.
    """
    for key, n in counts.items():
        counter = _EVENT_COUNTERS.get(key)
        if counter is None:
            counter = _EVENT_COUNTERS[key] = EVENTS.labels(*key)
        counter.inc(n)


@operator
def user_state(
    step_id: str, up: KeyedStream[UserStateIn], params: UserStateParams
) -> KeyedStream[UserStateOut]:
    """Keep each user's state and emit a `UserUpdate` per accepted event (full or light).

    :arg step_id: Unique ID.
    :arg up: Accepted events and `Forget` requests keyed by user id; a `Forget` (or an event
        with ``consent: false``) becomes an `Erasure`.
    :arg params: State configuration.
    :returns: Per user, a `UserUpdate` for each accepted event and a `DeadLetter` (reason
        ``late``) for each event behind the watermark by more than the allowed lateness;
        duplicates produce no update. The updates are in event order per user; the last
        accepted one of each batch and those at clusterer learn points are full. A stamped
        event that yields no update yields a `Progress` instead.
    """

    def builder(resume_state: UserState | bytes | None) -> UserStateLogic:
        return UserStateLogic(params, resume_state)

    return op.stateful_batch("stateful_batch", up, builder)
