"""Sliding event-time counts of a user's views over several horizons at once.

>>> from tailor.state.profile.event import Event
>>> w = ViewWindows(windows_s=(3600, 86400))
>>> for i, ts in enumerate([0.0, 1800.0, 7200.0]):
...     w.update(Event(event_id=str(i), user_id="u", type="page_view", ts=ts))
>>> w.get()
{'views_1h': 1, 'views_24h': 3}
>>> window_name(900), window_name(604800), window_name(172800)
('15m', '7d', '2d')
"""

from __future__ import annotations

from bisect import bisect_right, insort
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any

from tailor.state.profile.event import Event

__all__ = ["DEFAULT_VIEW_TYPES", "ViewWindows", "window_name"]

DEFAULT_VIEW_TYPES: frozenset[str] = frozenset({"page_view", "product_view"})


def window_name(seconds: float) -> str:
    """Human suffix of a horizon, used in feature names: 3600 → 1h, 86400 → 24h, 604800 → 7d.

    A day stays in hours (24h reads better next to 1h); longer whole days use d; otherwise the
    largest whole unit of h, m or s.
    """
    if seconds <= 0:
        raise ValueError("a window must be positive")
    if seconds != int(seconds):
        return f"{seconds:g}s"
    whole = int(seconds)
    if whole % 86400 == 0 and whole > 86400:
        return f"{whole // 86400}d"
    for unit, size in (("h", 3600), ("m", 60)):
        if whole % size == 0:
            return f"{whole // size}{unit}"
    return f"{whole}s"


class ViewWindows:
    """Counts of view events with ts in (now - w, now] for each horizon w.

    `now` is the user's newest event time over *all* event types, so a purchase an hour after
    the last view moves the views_1h count to 0 even though no view arrived.

    Why not `river.utils.TimeRolling`: it costs ~12 µs per window per call and needs one
    instance per horizon, each holding its own copy of the timestamps. One sorted deque of
    view timestamps, trimmed to the longest horizon, answers every horizon with a binary
    search, so three windows cost about what one does.

    Parameters
    ----------
    windows_s
        Horizons in seconds; feature names are `views_<window_name(w)>`.
    view_types
        Event types that count as a view.
    """

    def __init__(
        self,
        windows_s: Iterable[float] = (3600, 86400, 604800),
        view_types: frozenset[str] = DEFAULT_VIEW_TYPES,
    ) -> None:
        self.windows_s = tuple(windows_s)
        self.view_types = view_types
        if not self.windows_s:
            raise ValueError("at least one window is needed")
        self.names = tuple(f"views_{window_name(w)}" for w in self.windows_s)
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"window names collide: {self.names}")
        self._longest = max(self.windows_s)
        self.now: float | None = None
        self._views: deque[float] = deque()

    def update(self, event: Event) -> None:
        """Advance `now` to the event's time and record it if it is a view inside the horizon."""
        ts = event.ts
        if self.now is None or ts > self.now:
            self.now = ts
        if event.type in self.view_types and ts > self.now - self._longest:
            if not self._views or ts >= self._views[-1]:
                self._views.append(ts)
            else:  # out of order (within lateness): keep the deque sorted
                insort(self._views, ts)
        self._expire()

    def _expire(self) -> None:
        if self.now is None:
            return
        horizon = self.now - self._longest
        views = self._views
        while views and views[0] <= horizon:
            views.popleft()

    def count(self, window_s: float, now: float | None = None) -> int:
        """Views with ts in (now - window_s, now]; the deque is sorted and ends at or before
        now. `now` defaults to the newest event's time; a later one ages the counts."""
        now = self.now if now is None or self.now is None else max(now, self.now)
        if now is None:
            return 0
        return len(self._views) - bisect_right(self._views, now - window_s)

    def get(self, now: float | None = None) -> dict[str, int]:
        """Every configured window's count under its feature name (at `now`, see `count`)."""
        pairs = zip(self.names, self.windows_s, strict=True)
        return {name: self.count(w, now) for name, w in pairs}

    def to_snapshot(self) -> tuple[Any, ...]:
        return (self.now, list(self._views))

    @classmethod
    def from_snapshot(
        cls,
        data: Sequence[Any],
        windows_s: Iterable[float],
        view_types: frozenset[str] = DEFAULT_VIEW_TYPES,
    ) -> ViewWindows:
        """Settings come from the caller's configuration, not the snapshot."""
        made = cls(windows_s, view_types)
        made.now, made._views = data[0], deque(data[1])
        return made
