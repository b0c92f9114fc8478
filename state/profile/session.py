"""Sessions cut by inactivity in event time.

A session is what a person does in one sitting: it ends when the user is quiet for longer than
`gap_s`. Time is the events' own time, never the worker's clock, so replaying a day of events
gives the same sessions in a second as it did live.

>>> from tailor.state.profile.event import Event
>>> s = Session(gap_s=1800.0)
>>> for i, ts in enumerate([0.0, 60.0, 5000.0]):
...     s.update(Event(event_id=str(i), user_id="u", type="product_view", ts=ts))
>>> s.session_count, s.events, s.duration, s.avg_duration, s.bounce_rate
(2, 1, 0.0, 60.0, 0.0)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from river import stats

from tailor.state.profile.event import Event

__all__ = ["Session"]


class Session:
    """Current session plus running statistics of the completed ones.

    Parameters
    ----------
    gap_s
        A new session starts when an event comes more than `gap_s` seconds after the newest
        event seen (exactly `gap_s` still continues the session).
    product_view_type
        The event type counted in `product_views`.

    Notes
    -----
    Out-of-order events: an event older than the newest one seen (the operator lets these
    through within the allowed lateness) joins the *current* session. It never moves the
    session's end (`last`), so it can neither close nor extend the session forward; if it is
    older than the session's start, the start moves back to it, so a session always spans all
    of its events. A late event that really belonged to the previous, already completed
    session is not re-assigned to it: completed statistics are final, which keeps the state
    O(1) and matches what Flink's session windows do once a window has fired.
    """

    def __init__(self, gap_s: float = 1800.0, product_view_type: str = "product_view") -> None:
        self.gap_s = gap_s
        self.product_view_type = product_view_type
        self.start: float | None = None
        self.last: float | None = None
        self.events = 0
        self.product_views = 0
        self.session_count = 0
        self.completed = 0
        self.bounces = 0
        self._durations = stats.Mean()
        self._lengths = stats.Mean()

    def update(self, event: Event) -> None:
        """Fold one event into the current session, closing it first if the gap has passed."""
        ts = event.ts
        if self.last is None or self.start is None:
            self._open(ts)
        elif ts - self.last > self.gap_s:
            self._close()
            self._open(ts)
        elif ts > self.last:
            self.last = ts
        elif ts < self.start:
            self.start = ts
        self.events += 1
        if event.type == self.product_view_type:
            self.product_views += 1

    def _open(self, ts: float) -> None:
        self.start = self.last = ts
        self.events = 0
        self.product_views = 0
        self.session_count += 1

    def _close(self) -> None:
        self.completed += 1
        self._durations.update(self.duration)
        self._lengths.update(self.events)
        if self.events == 1:
            self.bounces += 1

    @property
    def duration(self) -> float:
        """Seconds from the first to the newest event of the current session (0 before any)."""
        if self.start is None or self.last is None:
            return 0.0
        return self.last - self.start

    @property
    def avg_duration(self) -> float:
        """Mean duration of completed sessions; 0.0 until one has completed."""
        return float(self._durations.get())

    @property
    def avg_events(self) -> float:
        """Mean number of events of completed sessions; 0.0 until one has completed."""
        return float(self._lengths.get())

    @property
    def bounce_rate(self) -> float:
        """Share of completed sessions with exactly one event; the open one is not judged yet."""
        return self.bounces / self.completed if self.completed else 0.0

    @staticmethod
    def closed(features: Mapping[str, float]) -> dict[str, float]:
        """Session features (`aged`'s names) with the open session closed, from the features
        alone: `session_count` counts the open session, so `session_count - 1` completed
        ones make the averages. What `aged` gives past the gap, for a profile without its
        state (`tailor.state.segments.profile_sample.age_profile`)."""
        out = dict(features)
        events = out.get("session_events", 0.0)
        if events <= 0:
            return out
        completed = max(0.0, out.get("session_count", 1.0) - 1.0)
        done = completed + 1.0
        out["avg_session_duration"] = (
            completed * out.get("avg_session_duration", 0.0) + out.get("session_duration", 0.0)
        ) / done
        out["avg_session_events"] = (completed * out.get("avg_session_events", 0.0) + events) / done
        out["bounce_rate"] = (completed * out.get("bounce_rate", 0.0) + (events == 1)) / done
        out.update(session_duration=0.0, session_events=0.0, product_views=0.0)
        return out

    def aged(self, now: float) -> dict[str, float]:
        """The session features as they stand at `now` (not before the newest event): the
        open session counts as completed once `now` is more than `gap_s` past its end, as the
        next event would close it. Leaves the state as it is."""
        features = {
            "session_duration": self.duration,
            "session_events": float(self.events),
            "product_views": float(self.product_views),
            "session_count": float(self.session_count),
            "avg_session_duration": self.avg_duration,
            "avg_session_events": self.avg_events,
            "bounce_rate": self.bounce_rate,
        }
        if self.last is None or now - self.last <= self.gap_s:
            return features
        completed = self.completed + 1
        n = self._durations.n
        features.update(
            session_duration=0.0,
            session_events=0.0,
            product_views=0.0,
            avg_session_duration=(n * self.avg_duration + self.duration) / completed,
            avg_session_events=(n * self.avg_events + self.events) / completed,
            bounce_rate=(self.bounces + (self.events == 1)) / completed,
        )
        return features

    def to_snapshot(self) -> tuple[Any, ...]:
        """The open session and the completed ones' counts and means; River's means as
        (n, mean), the state River's own `Mean._from_state` takes back."""
        durations, lengths = self._durations, self._lengths
        counts = (self.events, self.product_views, self.session_count, self.completed)
        means = (durations.n, durations.get(), lengths.n, lengths.get())
        return (self.start, self.last, *counts, self.bounces, *means)

    @classmethod
    def from_snapshot(
        cls, data: Sequence[Any], gap_s: float = 1800.0, product_view_type: str = "product_view"
    ) -> Session:
        """Settings come from the caller's configuration, not the snapshot."""
        made = cls(gap_s, product_view_type)
        made.start, made.last, made.events, made.product_views = data[:4]
        made.session_count, made.completed, made.bounces = data[4:7]
        made._durations = stats.Mean._from_state(data[7], data[8])
        made._lengths = stats.Mean._from_state(data[9], data[10])
        return made
