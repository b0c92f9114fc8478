"""Everything Tailor remembers about one user, as one picklable object.

Bytewax snapshots per-key state whole, so the composite is the unit of recovery: one
`UserState` per user, updated by the `user_state` operator in event time and copied out by
its `snapshot()`. No field reads the wall clock, so a replay rebuilds identical state.

>>> from tailor.state.profile.event import Event
>>> u = UserState()
>>> u.update(Event(event_id="1", user_id="u", type="product_view", ts=0.0, item_id="i1"))
>>> u.update(Event(event_id="2", user_id="u", type="purchase", ts=60.0, item_id="i1", price=5.0))
>>> u.version, u.history, u.purchased, u.features()["spend_total"]
(2, ('i1',), frozenset({'i1'}), 5.0)
>>> u.is_duplicate(Event(event_id="1", user_id="u", type="click", ts=61.0))
True
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any

from tailor.state.profile.context import CONTEXT_FEATURES, ContextMix
from tailor.state.profile.event import Event
from tailor.state.profile.interests import Interests
from tailor.state.profile.rfm import RFM
from tailor.state.profile.session import Session
from tailor.state.profile.windows import DEFAULT_VIEW_TYPES, ViewWindows, window_name

__all__ = [
    "DEFAULT_INTERACTION_TYPES",
    "DEFAULT_VIEW_TYPES",
    "DEFAULT_WINDOWS_S",
    "FEATURE_NAMES",
    "UserState",
    "feature_horizons",
    "feature_names",
    "profile_feature_names",
]

DEFAULT_WINDOWS_S: tuple[float, ...] = (3600, 86400, 604800)
DEFAULT_INTERACTION_TYPES: frozenset[str] = frozenset(
    {"product_view", "click", "add_to_cart", "purchase"}
)

_SESSION_FEATURES = (
    "session_duration",
    "session_events",
    "product_views",
    "session_count",
    "avg_session_duration",
    "avg_session_events",
    "bounce_rate",
)
_RFM_FEATURES = ("recency_days", "purchases_30d", "spend_30d", "purchases_total", "spend_total")


def feature_names(windows_s: Iterable[float] = DEFAULT_WINDOWS_S) -> tuple[str, ...]:
    """The ordered behavioural features (sessions, view windows, RFM) for the given view
    windows: what the clusterer sees by default."""
    views = tuple(f"views_{window_name(w)}" for w in windows_s)
    return _SESSION_FEATURES + views + _RFM_FEATURES


def profile_feature_names(windows_s: Iterable[float] = DEFAULT_WINDOWS_S) -> tuple[str, ...]:
    """Every numeric feature of a profile: the behavioural ones, then the context mix
    (`tailor.state.profile.context`), which rules use and the clusterer may be given."""
    return feature_names(windows_s) + CONTEXT_FEATURES


#: The numeric features every profile carries, in order, with the default windows.
FEATURE_NAMES: tuple[str, ...] = feature_names()


def feature_horizons(
    windows_s: Iterable[float] = DEFAULT_WINDOWS_S,
    session_gap_s: float = 1800.0,
    rfm_window_s: float = 30 * 86400.0,
) -> dict[str, float]:
    """Feature → the age (seconds) past which it reads 0 with no new event: the open
    session's, each view window's and the RFM window's counts (`profile_sample.age_profile`
    ages a profile from these, where `aged_features` has the user's whole state)."""
    horizons = dict.fromkeys(("session_duration", "session_events", "product_views"), session_gap_s)
    horizons.update((f"views_{window_name(w)}", float(w)) for w in windows_s)
    horizons.update(purchases_30d=rfm_window_s, spend_30d=rfm_window_s)
    return horizons


class UserState:
    """Per-user composite: session, view windows, RFM, interests, history and dedup memory.

    Parameters
    ----------
    session_gap_s, windows_s, rfm_window_s, interest_halflife_s, top_categories
        Passed to `Session`, `ViewWindows`, `RFM` and `Interests`.
    history_len
        Recent interacted item ids kept, most recent last; a repeated item moves to the end.
    max_purchased
        Purchased item ids kept (most recent purchases win), used to exclude them from recs.
    dedup_horizon_s
        Event ids are remembered this long in event time (relative to the watermark).
    view_types, interaction_types
        Event types counted as views (windows) and as item interactions (history).

    Attributes
    ----------
    watermark
        The newest event time accepted for this user (None before the first event).
    version
        Number of accepted events: orders this user's writes downstream.
    """

    def __init__(
        self,
        session_gap_s: float = 1800.0,
        windows_s: Iterable[float] = DEFAULT_WINDOWS_S,
        rfm_window_s: float = 2592000.0,
        interest_halflife_s: float = 604800.0,
        top_categories: int = 5,
        history_len: int = 20,
        max_purchased: int = 200,
        dedup_horizon_s: float = 86400.0,
        view_types: frozenset[str] = DEFAULT_VIEW_TYPES,
        interaction_types: frozenset[str] = DEFAULT_INTERACTION_TYPES,
    ) -> None:
        self.session_gap_s = session_gap_s
        self.windows_s = tuple(windows_s)
        self.rfm_window_s = rfm_window_s
        self.interest_halflife_s = interest_halflife_s
        self.top_categories = top_categories
        self.history_len = history_len
        self.max_purchased = max_purchased
        self.dedup_horizon_s = dedup_horizon_s
        self.view_types = view_types
        self.interaction_types = interaction_types

        self.session = Session(gap_s=session_gap_s)
        self.windows = ViewWindows(windows_s=self.windows_s, view_types=view_types)
        self.rfm = RFM(window_s=rfm_window_s)
        self.interests = Interests(halflife_s=interest_halflife_s, top_n=top_categories)
        self.device: str | None = None
        self.referrer: str | None = None
        self.mix = ContextMix()
        self._device_ts = float("-inf")
        self._referrer_ts = float("-inf")
        # dicts as ordered sets: O(1) membership, move-to-end and drop-oldest
        self._history: dict[str, None] = {}
        self._purchased: dict[str, None] = {}
        self._seen: dict[str, float] = {}
        self._seen_order: deque[tuple[float, str]] = deque()
        self.watermark: float | None = None
        #: (type, time) of the last event accepted, in arrival order: what an output shows.
        self.last_event: tuple[str, float] | None = None
        self.version = 0
        #: The user opted out: everything else is empty, and later events are dropped.
        self.opted_out = False

    @property
    def feature_names(self) -> tuple[str, ...]:
        """The ordered names of `features()` for this state's windows."""
        return _SESSION_FEATURES + self.windows.names + _RFM_FEATURES + CONTEXT_FEATURES

    def is_duplicate(self, event: Event) -> bool:
        """True if this event id was accepted within the dedup horizon of the watermark."""
        seen_ts = self._seen.get(event.event_id)
        if seen_ts is None or self.watermark is None:
            return False
        return seen_ts > self.watermark - self.dedup_horizon_s

    def lag(self, event: Event) -> float:
        """Seconds the event is behind this user's watermark (0 when it is not behind)."""
        if self.watermark is None:
            return 0.0
        return max(0.0, self.watermark - event.ts)

    def update(self, event: Event) -> None:
        """Accept one event: every part of the state moves, and the version counts it.

        Duplicate and lateness checks are the caller's policy (see `tailor.operators.user_state`):
        this method takes whatever it is given.
        """
        watermark = event.ts if self.watermark is None else max(self.watermark, event.ts)
        self.watermark = watermark
        self.last_event = (event.type, event.ts)
        self.version += 1
        self.session.update(event)
        self.windows.update(event)
        self.rfm.update(event)
        self.interests.update(event)
        self._update_context(event)
        self._update_items(event)
        self._remember(event, watermark)

    def _update_context(self, event: Event) -> None:
        """Device and referrer of the newest event (in event time) that carries one; every
        event's time, device and channel in the context mix."""
        self.mix.update(event)
        if event.device is not None and event.ts >= self._device_ts:
            self.device, self._device_ts = event.device, event.ts
        if event.referrer is not None and event.ts >= self._referrer_ts:
            self.referrer, self._referrer_ts = event.referrer, event.ts

    def _update_items(self, event: Event) -> None:
        item = event.item_id
        if item is None:
            return
        if event.type in self.interaction_types:
            _push(self._history, item, self.history_len)
        if event.type == self.rfm.purchase_type:
            _push(self._purchased, item, self.max_purchased)

    def _remember(self, event: Event, watermark: float) -> None:
        """Keep the event id for dedup, forgetting ids older than the horizon.

        Ids leave in arrival order; an id that arrived late can outstay its horizon by at most
        the allowed lateness, which keeps the memory bounded without a heap.
        """
        self._seen[event.event_id] = event.ts
        self._seen_order.append((event.ts, event.event_id))
        horizon = watermark - self.dedup_horizon_s
        order = self._seen_order
        while order and order[0][0] <= horizon:
            ts, event_id = order.popleft()
            if self._seen.get(event_id) == ts:
                del self._seen[event_id]

    @property
    def history(self) -> tuple[str, ...]:
        """Recently interacted item ids, oldest first, each once."""
        return tuple(self._history)

    @property
    def purchased(self) -> frozenset[str]:
        """Item ids the user bought (the most recent `max_purchased`)."""
        return frozenset(self._purchased)

    @property
    def seen_ids(self) -> int:
        """How many event ids the dedup memory holds (bounded by the horizon)."""
        return len(self._seen)

    def top_interests(self) -> tuple[tuple[str, float], ...]:
        """The `top_categories` strongest decayed categories as (category, score)."""
        return self.interests.top()

    def aged_features(self, now: float) -> dict[str, float]:
        """The numeric profile as it stands at `now`, with no new event (segments that age:
        `tailor.operators.aging`): the open session closes after its gap, windows count back from
        `now`, recency grows. At or before the newest event it is `features()`. Leaves the
        state as it is, so the events that follow update it as if no aging had happened."""
        if self.watermark is None or now <= self.watermark:
            return self.features()
        out = self.session.aged(now)
        out.update((name, float(n)) for name, n in self.windows.get(now).items())
        out.update(self.rfm.aged(now))
        out.update(self.mix.features())
        return out

    def features(self) -> dict[str, float]:
        """The numeric profile, in `feature_names` order, every value a float."""
        s, r = self.session, self.rfm
        out: dict[str, float] = {
            "session_duration": s.duration,
            "session_events": float(s.events),
            "product_views": float(s.product_views),
            "session_count": float(s.session_count),
            "avg_session_duration": s.avg_duration,
            "avg_session_events": s.avg_events,
            "bounce_rate": s.bounce_rate,
        }
        out.update((name, float(n)) for name, n in self.windows.get().items())
        out["recency_days"] = r.recency_days
        out["purchases_30d"] = float(r.purchases_30d)
        out["spend_30d"] = r.spend_30d
        out["purchases_total"] = float(r.purchases_total)
        out["spend_total"] = r.spend_total
        out.update(self.mix.features())
        return out

    def to_snapshot(self) -> dict[str, Any]:
        """What was learned, as plain data; the settings are the caller's configuration
        (`from_snapshot` takes them), so a per-user snapshot carries none of them."""
        return {
            "session": self.session.to_snapshot(),
            "windows": self.windows.to_snapshot(),
            "rfm": self.rfm.to_snapshot(),
            "interests": self.interests.to_snapshot(),
            "context": (self.device, self.referrer, self._device_ts, self._referrer_ts),
            "mix": self.mix.to_snapshot(),
            "history": list(self._history),
            "purchased": list(self._purchased),
            "seen": self._seen.copy(),
            "seen_order": list(self._seen_order),
            "watermark": self.watermark,
            "last_event": self.last_event,
            "version": self.version,
            "opted_out": self.opted_out,
        }

    @classmethod
    def from_snapshot(cls, data: Mapping[str, Any], **settings: Any) -> UserState:
        """The state `to_snapshot` gave, with `settings` (the constructor's parameters)."""
        made = cls(**settings)
        made.session = Session.from_snapshot(data["session"], made.session_gap_s)
        made.windows = ViewWindows.from_snapshot(data["windows"], made.windows_s, made.view_types)
        made.rfm = RFM.from_snapshot(data["rfm"], made.rfm_window_s)
        made.interests = Interests.from_snapshot(
            data["interests"], made.interest_halflife_s, made.top_categories
        )
        made.device, made.referrer, made._device_ts, made._referrer_ts = data["context"]
        made.mix = ContextMix.from_snapshot(data["mix"])
        made._history = dict.fromkeys(data["history"])
        made._purchased = dict.fromkeys(data["purchased"])
        made._seen = dict(data["seen"])
        made._seen_order = deque(tuple(entry) for entry in data["seen_order"])
        made.watermark, made.version = data["watermark"], data["version"]
        last = data["last_event"]
        made.last_event = None if last is None else (last[0], last[1])
        made.opted_out = data["opted_out"]
        return made


def _push(ordered: dict[str, None], item: str, limit: int) -> None:
    """Move or add `item` to the end of an ordered set, dropping the oldest past `limit`."""
    ordered.pop(item, None)
    ordered[item] = None
    while len(ordered) > limit:
        del ordered[next(iter(ordered))]
