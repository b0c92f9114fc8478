"""Recency, frequency and monetary value of a user's purchases, in event time.

RFM is the oldest customer segmentation there is (Hughes 1994; Fader, Hardie & Lee 2005):
how long since the last purchase, how often, how much. The sliding window gives the recent
view (30 days by default) and the totals the lifetime one.

>>> from tailor.state.profile.event import Event
>>> r = RFM()
>>> r.update(Event(event_id="1", user_id="u", type="purchase", ts=0.0, price=10.0, quantity=2))
>>> r.update(Event(event_id="2", user_id="u", type="page_view", ts=2 * 86400.0))
>>> r.recency_days, r.purchases_30d, r.spend_30d, r.spend_total
(2.0, 1, 20.0, 20.0)
"""

from __future__ import annotations

import math
from bisect import insort
from collections import deque
from collections.abc import Sequence
from typing import Any

from tailor.state.profile.event import Event

__all__ = ["RFM"]

DAY_S = 86400.0


class RFM:
    """Purchase recency, windowed and lifetime purchase counts and spend.

    Parameters
    ----------
    window_s
        Width of the sliding window: purchases with ts in (now - window_s, now] count.
    cap_days
        Recency is capped here, and is this value for users who never bought, so the
        feature stays bounded for the clusterer.
    purchase_type
        The event type that is a purchase. Spend of a purchase is `event.amount`.

    `now` is the user's newest event time of any type: recency keeps growing while a user
    browses without buying, which is the signal RFM is about.
    """

    def __init__(
        self,
        window_s: float = 30 * DAY_S,
        cap_days: float = 365.0,
        purchase_type: str = "purchase",
    ) -> None:
        self.window_s = window_s
        self.cap_days = cap_days
        self.purchase_type = purchase_type
        self.now: float | None = None
        self.last_purchase: float | None = None
        self.purchases_total = 0
        self.spend_total = 0.0
        self._recent: deque[tuple[float, float]] = deque()  # (ts, amount), sorted by ts
        self._recent_spend = 0.0

    def update(self, event: Event) -> None:
        """Advance `now`, record a purchase, and drop purchases that left the window."""
        ts = event.ts
        now = ts if self.now is None else max(self.now, ts)
        self.now = now
        if event.type == self.purchase_type:
            self._purchase(ts, event.amount, now)
        self._expire(now)

    def _purchase(self, ts: float, amount: float, now: float) -> None:
        self.purchases_total += 1
        self.spend_total += amount
        if self.last_purchase is None or ts > self.last_purchase:
            self.last_purchase = ts
        if ts <= now - self.window_s:
            return
        if not self._recent or ts >= self._recent[-1][0]:
            self._recent.append((ts, amount))
        else:  # out of order within lateness: keep the deque sorted by time
            insort(self._recent, (ts, amount))
        self._recent_spend += amount

    def _expire(self, now: float) -> None:
        horizon = now - self.window_s
        recent = self._recent
        while recent and recent[0][0] <= horizon:
            self._recent_spend -= recent.popleft()[1]
        if not recent:
            # a running sum drifts by rounding; an empty window is exactly 0, not 1e-13
            self._recent_spend = 0.0

    @property
    def recency_days(self) -> float:
        """Days from the last purchase to now, capped; the cap when the user never bought."""
        if self.last_purchase is None or self.now is None:
            return self.cap_days
        return min(self.cap_days, (self.now - self.last_purchase) / DAY_S)

    @property
    def purchases_30d(self) -> int:
        """Purchases inside the sliding window (named for the default 30-day width)."""
        return len(self._recent)

    @property
    def spend_30d(self) -> float:
        """Spend inside the sliding window."""
        return self._recent_spend

    def aged(self, now: float) -> dict[str, float]:
        """The RFM features as they stand at `now` (not before the newest event): recency
        measured to `now`, the window's purchases and spend counted back from it. Leaves the
        state as it is (a later event still sees every purchase it holds)."""
        now = now if self.now is None else max(now, self.now)
        horizon = now - self.window_s
        recent = [amount for ts, amount in self._recent if ts > horizon]
        # the running sum while nothing left the window: what `features` gave at the last event
        spend = self._recent_spend if len(recent) == len(self._recent) else math.fsum(recent)
        recency = self.cap_days
        if self.last_purchase is not None:
            recency = min(self.cap_days, (now - self.last_purchase) / DAY_S)
        return {
            "recency_days": recency,
            "purchases_30d": float(len(recent)),
            "spend_30d": spend,
            "purchases_total": float(self.purchases_total),
            "spend_total": self.spend_total,
        }

    def to_snapshot(self) -> tuple[Any, ...]:
        totals = (self.purchases_total, self.spend_total)
        return (self.now, self.last_purchase, *totals, list(self._recent), self._recent_spend)

    @classmethod
    def from_snapshot(
        cls,
        data: Sequence[Any],
        window_s: float = 30 * DAY_S,
        cap_days: float = 365.0,
        purchase_type: str = "purchase",
    ) -> RFM:
        """Settings come from the caller's configuration, not the snapshot."""
        made = cls(window_s, cap_days, purchase_type)
        made.now, made.last_purchase, made.purchases_total, made.spend_total = data[:4]
        made._recent = deque(tuple(entry) for entry in data[4])
        made._recent_spend = data[5]
        return made
