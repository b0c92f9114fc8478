"""The published non-personalised lists: where each last changed, in the models' learning order.

The live models already keep all-time popularity (`MostPopular`), trending (`TrendingRecommender`),
trending per cluster segment (`SegmentTrending`) and popularity per category (`CategoryPopular`)
for the hybrid's cold start. Apps serving new and anonymous users want the same lists, so the
models step publishes them (`tailor.operators.models`); this module says which lists changed
and what version each one has.

A list's *version* is its place in the models' learning order: the number of interactions
learned (plus item blocks applied) when the list last changed: an interaction that reached
its model, or a block, which may change any list. A list is a function of its model and the
blocklist, and neither moved since that place, so the list a version names is the same
however the stream was cut into batches, whenever it is published, and after a crash and
resume: a replay writes the same bytes, and a guard on the version (the sink's) never lets a
list move backwards.

>>> from tailor.state.recs.base import Interaction
>>> from tailor.state.recs.trending import MostPopular
>>> pop = MostPopular()
>>> sources = FallbackSources.of([pop])
>>> changes = FallbackChanges()
>>> for item in ("a", "b", "b"):
...     pop.learn_one(Interaction("u1", item, 0.0), ())
...     changes.learned(Interaction("u1", item, 0.0), sources)
>>> changes.take(sources.lists())
[(('popular', ''), 3)]
>>> sources.ranked(POPULAR_LIST, 5, set())
(0.0, [('b', 2.0), ('a', 1.0)])
>>> changes.take(sources.lists())
[]
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tailor.state.recs.base import Interaction, Recommender
from tailor.state.recs.cooccurrence import CoocRecommender
from tailor.state.recs.group_trending import CategoryPopular, SegmentTrending
from tailor.state.recs.hybrid import Hybrid
from tailor.state.recs.trending import MostPopular, Trending, TrendingRecommender

__all__ = [
    "CATEGORY",
    "POPULAR",
    "POPULAR_LIST",
    "SEGMENT",
    "TRENDING",
    "TRENDING_LIST",
    "FallbackChanges",
    "FallbackSources",
    "ListId",
]

#: The kinds of list: all-time popular, trending, trending in a segment, popular in a category.
POPULAR, TRENDING, SEGMENT, CATEGORY = "popular", "trending", "segment", "category"
#: A list: (kind, group), the group a segment id or a category ("" for popular and trending).
ListId = tuple[str, str]
POPULAR_LIST: ListId = (POPULAR, "")
TRENDING_LIST: ListId = (TRENDING, "")


@dataclass(frozen=True)
class FallbackSources:
    """The models that hold the lists, found among the variants' models (a hybrid's
    components, a co-occurrence model's fill); a kind none of them keeps is not published."""

    popular: MostPopular | None = None
    trending: TrendingRecommender | None = None
    segments: SegmentTrending | None = None
    categories: CategoryPopular | None = None

    @classmethod
    def of(cls, models: Iterable[Recommender]) -> FallbackSources:
        """The first model of each kind among `models` and their parts, in order."""
        found: dict[str, Any] = {}
        for model in models:
            for part in _parts(model):
                if type(part) is MostPopular:
                    found.setdefault("popular", part)
                elif type(part) is TrendingRecommender:
                    found.setdefault("trending", part)
                elif isinstance(part, SegmentTrending):
                    found.setdefault("segments", part)
                elif isinstance(part, CategoryPopular):
                    found.setdefault("categories", part)
        return cls(**found)

    def lists(self) -> list[ListId]:
        """Every list there is now (a segment or category list exists once touched)."""
        out: list[ListId] = []
        if self.popular is not None:
            out.append(POPULAR_LIST)
        if self.trending is not None:
            out.append(TRENDING_LIST)
        if self.segments is not None:
            out += [(SEGMENT, s) for s in sorted(self.segments.trending) if s]
        if self.categories is not None:
            out += [(CATEGORY, c) for c in sorted(self.categories.popular)]
        return out

    def trending_of(self, list_id: ListId) -> Trending | None:
        """The decayed counts a list is the top of (None: no such list)."""
        kind, group = list_id
        if kind == POPULAR:
            return None if self.popular is None else self.popular.trending
        if kind == TRENDING:
            return None if self.trending is None else self.trending.trending
        if kind == SEGMENT:
            return None if self.segments is None else self.segments.trending.get(group)
        return None if self.categories is None else self.categories.popular.get(group)

    def ranked(
        self, list_id: ListId, length: int, blocked: Collection[str]
    ) -> tuple[float, list[tuple[str, float]]] | None:
        """The list's event time (its model's newest; scores are decayed to it) and its best
        `length` items but the blocked ones, best first, ties by id; None if it has none."""
        counts = self.trending_of(list_id)
        if counts is None or counts.now is None:
            return None
        return counts.now, counts.top(length, blocked)


def _parts(model: Recommender) -> list[Recommender]:
    if isinstance(model, Hybrid):
        return list(model.components.values())
    if isinstance(model, CoocRecommender) and model.fill is not None:
        return [model.fill]
    return [model]


@dataclass
class FallbackChanges:
    """Where each list last changed, and what changed since the lists were last taken.

    `position` counts the interactions learned and the blocks applied. Popular and trending
    change at every interaction (`learned_at`); a segment's or a category's list at those that
    reach it (`groups`, since the last `take`); every list at a block (`blocked_at`).
    """

    position: int = 0
    learned_at: int = 0
    blocked_at: int = 0
    #: The position at the last `take`: what changed after it is due.
    taken: int = 0
    groups: dict[ListId, int] = field(default_factory=dict)

    def learned(self, event: Interaction, sources: FallbackSources) -> None:
        """One more interaction, which the models just learned: the segment the user is in,
        and the categories of the item (as the category model keeps them), changed."""
        self.position += 1
        self.learned_at = at = self.position
        if sources.segments is not None:
            segment = sources.segments.segment_of.get(event.user)
            if segment:
                self.groups[(SEGMENT, segment)] = at
        if sources.categories is not None:
            for category in sources.categories.categories.get(event.item, ()):
                self.groups[(CATEGORY, category)] = at

    def blocked(self) -> None:
        """The blocklist changed: any list may have."""
        self.position += 1
        self.blocked_at = self.position

    def changed(self) -> bool:
        """Whether some list changed since the last `take`."""
        return self.position > self.taken

    def take(self, lists: Iterable[ListId]) -> list[tuple[ListId, int]]:
        """The lists changed since the last take, among `lists` (all there are, in the order
        wanted), each with its version; what is taken is no longer due."""
        since, blocked = self.taken, self.blocked_at
        out: list[tuple[ListId, int]] = []
        for list_id in lists:
            kind = list_id[0]
            changed = self.learned_at if kind in (POPULAR, TRENDING) else self.groups.get(list_id)
            version = max(changed or 0, blocked)
            if version > since:
                out.append((list_id, version))
        self.taken = self.position
        self.groups.clear()
        return out

    def to_snapshot(self) -> dict[str, Any]:
        return {
            "position": self.position,
            "learned_at": self.learned_at,
            "blocked_at": self.blocked_at,
            "taken": self.taken,
            "groups": [(kind, group, at) for (kind, group), at in self.groups.items()],
        }

    @classmethod
    def from_snapshot(cls, data: Mapping[str, Any] | None) -> FallbackChanges:
        """From `to_snapshot` data; None (a store from before the lists) starts at 0."""
        if data is None:
            return cls()
        groups = {(kind, group): at for kind, group, at in data["groups"]}
        return cls(data["position"], data["learned_at"], data["blocked_at"], data["taken"], groups)
