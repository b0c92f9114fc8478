"""Decayed popularity within a group: per category (content-based) and per user segment.

Co-occurrence and matrix factorisation know an item only once users touched it together with
others; a new item, or a user whose items have no neighbours yet, gets nothing from them.
Metadata does not wait: the categories an event carries say what an item is from its first
event, and the user's recent items say which categories they care about. `CategoryPopular`
recommends what is trending in the user's categories (a new item rises there as soon as it is
touched, with a short half-life) and scores any item by how well its categories match the
user's, which the hybrid uses to re-rank co-occurrence candidates. `SegmentTrending` is the
same idea over the user's segment (the cluster the segment model put them in): the fallback
for a user with no history, between their own items and trending for everyone.

>>> model = CategoryPopular(halflife_s=3600.0)
>>> for user, item, cats in [("u1", "heat", ("Drama",)), ("u2", "heat", ("Drama",)),
...                          ("u2", "up", ("Comedy",)), ("u3", "big", ("Drama",))]:
...     model.learn_one(Interaction(user, item, 0.0, categories=cats), ())
>>> [item for item, _ in model.recommend("u4", ("big",), 0.0, 2, {"big"})]
['heat']
>>> model.why("u4", ("big",), ["heat"])
['popular in Drama']
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Collection, Mapping, Sequence
from itertools import chain, islice
from typing import Any, Self

import numpy as np

from tailor.state import increments
from tailor.state.recs.base import Interaction, Recommender, Scored
from tailor.state.recs.trending import Trending

__all__ = ["CategoryPopular", "SegmentTrending"]


class CategoryPopular(Recommender):
    """Trending per category, recommended by the categories of the user's recent items.

    Parameters
    ----------
    halflife_s
        Event-time half-life of each category's popularity.
    window
        Recent history items whose categories make the user's taste (newest weighs most,
        `1 / (1 + age)`, shared among an item's categories).
    max_categories
        How many of the user's top categories a recommendation draws from.
    """

    def __init__(self, halflife_s: float = 86400.0, window: int = 20, max_categories: int = 3):
        self.halflife_s = halflife_s
        self.window = window
        self.max_categories = max_categories
        self.categories: dict[str, tuple[str, ...]] = {}  # item → categories, first given
        self.popular: dict[str, Trending] = {}
        # the last taste computed: a hybrid asks for score, recommend and why in a row
        self._last_taste: tuple[tuple[str, ...], dict[str, float]] = ((), {})
        # Increments: the generation (its trendings' too: `mark` marks them all), and how
        # many items had categories at each mark (the map only grows, in insertion order).
        self._gen = 0
        self._lengths: dict[int, int] = {}

    def learn_one(
        self, event: Interaction, history: Sequence[str], exclude: Collection[str] = ()
    ) -> None:
        categories = self.categories.get(event.item)
        if categories is None:
            if not event.categories:
                return
            categories = self.categories[event.item] = tuple(event.categories)
        for category in categories:
            popular = self.popular.get(category)
            if popular is None:
                popular = self.popular[category] = Trending(self.halflife_s, generation=self._gen)
            popular.add(event.item, event.ts, event.weight)

    def taste(self, history: Sequence[str]) -> dict[str, float]:
        """Category → weight from the user's recent items."""
        recent = tuple(history[-self.window :])
        if recent == self._last_taste[0] and recent:
            return self._last_taste[1]
        weights: dict[str, float] = {}
        for age, item in enumerate(reversed(recent)):
            categories = self.categories.get(item, ())
            for category in categories:
                share = 1.0 / ((1.0 + age) * len(categories))
                weights[category] = weights.get(category, 0.0) + share
        self._last_taste = (recent, weights)
        return weights

    def recommend(
        self, user: str, history: Sequence[str], ts: float, k: int, exclude: Collection[str]
    ) -> list[Scored]:
        """Each top category's trending list, scaled by its best item and the user's taste,
        summed; ties to the smaller id."""
        taste = self.taste(history)
        top = sorted(taste.items(), key=lambda pair: (-pair[1], pair[0]))[: self.max_categories]
        scores: dict[str, float] = {}
        for category, weight in top:
            ranked = self.popular[category].top(k, exclude)
            if ranked and ranked[0][1] > 0:
                best = ranked[0][1]
                for item, score in ranked:
                    scores[item] = scores.get(item, 0.0) + weight * score / best
        return sorted(scores.items(), key=lambda pair: (-pair[1], pair[0]))[:k]

    def score(self, user: str, history: Sequence[str], items: Sequence[str]) -> list[float]:
        """How well each item's categories match the user's taste (mean over its categories)."""
        taste, known = self.taste(history), self.categories
        out = []
        for item in items:
            categories = known.get(item)
            if categories:
                match = 0.0
                for category in categories:
                    match += taste.get(category, 0.0)
                out.append(match / len(categories))
            else:
                out.append(0.0)
        return out

    def why(self, user: str, history: Sequence[str], items: Sequence[str]) -> list[str]:
        taste = self.taste(history)
        out = []
        for item in items:
            categories = self.categories.get(item, ())
            best = min(categories, key=lambda c: (-taste.get(c, 0.0), c), default=None)
            out.append("" if best is None else f"popular in {best}")
        return out

    def forget(self, user: str, history: Sequence[str]) -> None:
        """Nothing per user: decayed counts over everyone, categories per item."""

    def to_snapshot(self) -> dict[str, Any]:
        """Settings, each item's categories, each category's trending (the taste cache is
        recomputed on demand)."""
        return {
            "kind": type(self).__name__,
            "halflife_s": self.halflife_s,
            "window": self.window,
            "max_categories": self.max_categories,
            "categories": dict(self.categories),
            "popular": {name: t.to_snapshot() for name, t in self.popular.items()},
        }

    @classmethod
    def from_snapshot(
        cls, data: Mapping[str, Any], parts: Mapping[str, Recommender] | None = None
    ) -> Self:
        data = increments.whole(data, cls)
        made = cls(data["halflife_s"], data["window"], data["max_categories"])
        made.categories = {item: tuple(c) for item, c in data["categories"].items()}
        made.popular = {name: Trending.from_snapshot(t) for name, t in data["popular"].items()}
        return made

    def mark(self) -> int:
        """Start the next generation, in every category's trending too
        (`tailor.state.increments`)."""
        for popular in self.popular.values():
            popular.mark()
        self._lengths[self._gen] = len(self.categories)
        self._gen += 1
        return self._gen - 1

    def changes_since(self, mark: int) -> dict[str, Any]:
        """The items given categories since `mark` with theirs (flat: the items, how many
        categories each, the categories one after another), and what each category's
        trending wrote since, all categories in one record (a dict of changes per category
        cost more to make and to pickle than the few rows each holds): the names of those
        written, their clocks, per name the count of rows written (the appended ones among
        them, in any order; -1: the weights of all rows follow) and of rows appended, and
        the rows, weights and new ids one after another (`Trending.changes_into`). A
        category new since, or renumbered since, is its whole snapshot."""
        new = len(self.categories) - self._lengths[mark]
        wholes: dict[str, dict[str, Any]] = {}
        names: list[str] = []
        clocks: list[tuple[int, float | None, float | None]] = []
        counts: list[int] = []
        rows: list[int] = []
        weights: list[float] = []
        items: list[str] = []
        for name, popular in self.popular.items():
            if not popular.changed_since(mark):
                continue
            if popular.renumbered_since(mark):
                wholes[name] = popular.to_snapshot()
                continue
            names.append(name)
            popular.changes_into(mark, clocks, counts, rows, weights, items)
        given = list(islice(reversed(self.categories.values()), new))[::-1]
        return {
            "categorised": list(islice(reversed(self.categories), new))[::-1],
            "category_counts": list(map(len, given)),
            "category_names": list(chain.from_iterable(given)),
            "whole": wholes,
            "names": names,
            "clocks": clocks,
            "counts": counts,
            "rows": rows,
            "weights": weights,
            "items": items,
        }

    @classmethod
    def patched(cls, whole: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
        """`whole` (the snapshot at a mark) with `changes_since` that mark applied."""
        popular = dict(whole["popular"])
        popular.update(changes["whole"])
        counts, items = changes["counts"], changes["items"]
        rows = np.array(changes["rows"], dtype=np.int64)
        weights = np.array(changes["weights"], dtype=np.float64)
        at_row = at_weight = at_item = 0
        for n, (name, clock) in enumerate(zip(changes["names"], changes["clocks"], strict=True)):
            base = popular[name]
            written, appended = counts[2 * n], counts[2 * n + 1]
            if written < 0:
                stop = at_weight + len(base["weights"]) + appended
                values = weights[at_weight:stop].copy()
            else:  # the rows written since, the appended ones among them, in any order
                stop = at_weight + written
                values = np.empty(len(base["weights"]) + appended, dtype=np.float64)
                values[: len(base["weights"])] = base["weights"]
                values[rows[at_row : at_row + written]] = weights[at_weight:stop]
                at_row += written
            popular[name] = {
                "halflife_s": base["halflife_s"],
                "cache_size": clock[0],
                "t0": clock[1],
                "now": clock[2],
                "items": [*base["items"], *items[at_item : at_item + appended]],
                "weights": values,
            }
            at_weight, at_item = stop, at_item + appended
        return {
            **whole,
            "categories": {**whole["categories"], **_categories(changes)},
            "popular": popular,
        }


def _categories(changes: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    """The items given categories in `changes` with theirs (flat there: tuples pickle slowly)."""
    names, at, out = changes["category_names"], 0, {}
    for item, count in zip(changes["categorised"], changes["category_counts"], strict=True):
        out[item] = tuple(names[at : at + count])
        at += count
    return out


class SegmentTrending(Recommender):
    """Trending per user segment; users' segments as the segment model last gave them.

    `assign` is called by whoever knows segments (the live models step); a replay without
    segments leaves every user unassigned and the model silent, so a fallback chain moves on.
    At most `max_users` assignments are kept (least recently assigned go first).
    """

    reason = "trending in your segment"

    def __init__(self, halflife_s: float = 86400.0, max_users: int = 100_000) -> None:
        self.halflife_s = halflife_s
        self.max_users = max_users
        self.segment_of: OrderedDict[str, str] = OrderedDict()
        self.trending: dict[str, Trending] = {}

    def assign(self, user: str, segment: str) -> None:
        """The user is now in `segment`; their next events count there."""
        self.segment_of[user] = segment
        self.segment_of.move_to_end(user)
        if len(self.segment_of) > self.max_users:
            self.segment_of.popitem(last=False)

    def learn_one(
        self, event: Interaction, history: Sequence[str], exclude: Collection[str] = ()
    ) -> None:
        segment = self.segment_of.get(event.user)
        if segment is None:
            return
        trending = self.trending.get(segment)
        if trending is None:
            trending = self.trending[segment] = Trending(self.halflife_s)
        trending.add(event.item, event.ts, event.weight)

    def recommend(
        self, user: str, history: Sequence[str], ts: float, k: int, exclude: Collection[str]
    ) -> list[Scored]:
        segment = self.segment_of.get(user)
        trending = None if segment is None else self.trending.get(segment)
        return [] if trending is None else trending.top(k, exclude)

    def score(self, user: str, history: Sequence[str], items: Sequence[str]) -> list[float]:
        segment = self.segment_of.get(user)
        trending = None if segment is None else self.trending.get(segment)
        return [0.0 if trending is None else trending.score(item) for item in items]

    def why(self, user: str, history: Sequence[str], items: Sequence[str]) -> list[str]:
        return [self.reason] * len(items)

    def forget(self, user: str, history: Sequence[str]) -> None:
        """The user's assignment goes; segment counts are aggregates."""
        self.segment_of.pop(user, None)

    def to_snapshot(self) -> dict[str, Any]:
        """Settings, the assignments as (user, segment) pairs oldest first, each segment's
        trending."""
        return {
            "kind": type(self).__name__,
            "halflife_s": self.halflife_s,
            "max_users": self.max_users,
            "users": list(self.segment_of),
            "segments": list(self.segment_of.values()),
            "trending": {name: t.to_snapshot() for name, t in self.trending.items()},
        }

    @classmethod
    def from_snapshot(
        cls, data: Mapping[str, Any], parts: Mapping[str, Recommender] | None = None
    ) -> Self:
        made = cls(data["halflife_s"], data["max_users"])
        made.segment_of = OrderedDict(zip(data["users"], data["segments"], strict=True))
        made.trending = {name: Trending.from_snapshot(t) for name, t in data["trending"].items()}
        return made
