"""Category interests that fade with event time.

Each event adds 1.0 to each of its categories, and a score halves every `halflife_s` seconds
of *event* time: a user who loved jazz a month ago and browses rock today is a rock fan now.

River has no counter that decays in event time: `stats.EWMean` and `sketch.HeavyHitters`
forget per update, not per second, so a burst of 100 events in one minute would erase a
week of history. Hence this small class.

>>> from tailor.state.profile.event import Event
>>> it = Interests(halflife_s=100.0, top_n=2)
>>> it.update(Event(event_id="1", user_id="u", type="click", ts=0.0, category=("jazz",)))
>>> it.update(Event(event_id="2", user_id="u", type="click", ts=100.0, category=("rock",)))
>>> it.top()
(('rock', 1.0), ('jazz', 0.5))
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tailor.state.profile.event import Event

__all__ = ["Interests"]

#: Rebase the stored scores once the newest event is this many half-lives past the anchor,
#: long before 2**exponent could overflow a float (2**1023).
_REBASE_HALFLIVES = 64.0


class Interests:
    """Exponentially decayed per-category scores with a bounded number of categories.

    Parameters
    ----------
    halflife_s
        Event-time seconds after which a category's score has halved.
    top_n
        How many categories `top()` returns.
    max_categories
        The dict never holds more; a new category evicts the weakest one, so a user with a
        long, wide history costs bounded memory and a new interest always gets a foothold.

    Scores are stored relative to an anchor time: an event at ts adds 2 ** ((ts - anchor) / h),
    and the score at `now` is the stored value times 2 ** ((anchor - now) / h). That makes
    an update O(1) instead of decaying every category, ranks never need the common factor, and
    an out-of-order event gets exactly its own decay.
    """

    def __init__(
        self, halflife_s: float = 604800.0, top_n: int = 5, max_categories: int = 50
    ) -> None:
        if halflife_s <= 0:
            raise ValueError("halflife_s must be positive")
        if max_categories < 1:
            raise ValueError("max_categories must be at least 1")
        self.halflife_s = halflife_s
        self.top_n = top_n
        self.max_categories = max_categories
        self.now: float | None = None
        self._anchor = 0.0
        self._scores: dict[str, float] = {}

    def update(self, event: Event) -> None:
        """Add one unit of interest to each category of the event, decayed to the anchor."""
        ts = event.ts
        if self.now is None:
            self.now = self._anchor = ts
        elif ts > self.now:
            self.now = ts
            if (ts - self._anchor) / self.halflife_s > _REBASE_HALFLIVES:
                self._rebase(ts)
        weight = 2.0 ** ((ts - self._anchor) / self.halflife_s)
        for category in event.category:
            self._add(category, weight)

    def _add(self, category: str, weight: float) -> None:
        scores = self._scores
        if category not in scores and len(scores) >= self.max_categories:
            del scores[min(scores, key=lambda c: (scores[c], c))]
        scores[category] = scores.get(category, 0.0) + weight

    def _rebase(self, anchor: float) -> None:
        factor = 2.0 ** ((self._anchor - anchor) / self.halflife_s)
        self._scores = {c: s * factor for c, s in self._scores.items()}
        self._anchor = anchor

    def score(self, category: str) -> float:
        """Decayed score of one category at the user's newest event time (0.0 if unknown)."""
        stored = self._scores.get(category)
        if stored is None or self.now is None:
            return 0.0
        return stored * 2.0 ** ((self._anchor - self.now) / self.halflife_s)

    def top(self) -> tuple[tuple[str, float], ...]:
        """The `top_n` categories as (category, score), by score descending, then by name."""
        if self.now is None:
            return ()
        factor = 2.0 ** ((self._anchor - self.now) / self.halflife_s)
        ranked = sorted(self._scores.items(), key=lambda cs: (-cs[1], cs[0]))
        return tuple((c, s * factor) for c, s in ranked[: self.top_n])

    def __len__(self) -> int:
        return len(self._scores)

    def to_snapshot(self) -> tuple[Any, ...]:
        return (self.now, self._anchor, dict(self._scores))

    @classmethod
    def from_snapshot(
        cls,
        data: Sequence[Any],
        halflife_s: float = 604800.0,
        top_n: int = 5,
        max_categories: int = 50,
    ) -> Interests:
        """Settings come from the caller's configuration, not the snapshot."""
        made = cls(halflife_s, top_n, max_categories)
        made.now, made._anchor, made._scores = data[0], data[1], dict(data[2])
        return made
