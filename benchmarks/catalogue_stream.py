"""A seeded synthetic shop: a catalogue of topics, Zipf popularity, sessions within a topic.

`benchmarks/catalogue.py` needs a stream that looks like a shop at a catalogue size no public
dataset here has (MovieLens latest-small knows 9,724 items): popular items draw most clicks,
and a session stays near one subject, so co-occurrence and matrix factorisation meet the kind
of structure they learn from, and the number of distinct items grows with the stream as it
would in a shop.

* Items `0 .. n-1`: item `i` has popularity `1 / (i + 1) ** zipf` and one topic (a random
  permutation deals items to topics of `topic_size`), so every topic mixes head and tail.
* A session belongs to one user (users drawn uniformly, so each has about
  `events_per_user / session_mean` sessions) and one topic: the user's home topic half the
  time, otherwise a topic drawn by popularity. Each of its events (geometric length, mean
  `session_mean`) picks an item of the topic by popularity with probability `in_topic`,
  otherwise any item by popularity.
* Event types: 90% `page_view`, 7% `add_to_cart`, 3% `purchase` (weights 1, 2, 3 by default).
* Times: sessions start uniformly over `events / rate` seconds and their events are
  `gap_s` apart on average (exponential), so sessions interleave as live traffic does.

Everything is drawn from one `numpy.random.default_rng(seed)`, vectorised: two million
events take a few seconds.

>>> stream = synthesise(CatalogueSpec(items=1000, topic_size=50, seed=3), 2000)
>>> len(stream.items), int(stream.items.max()) < 1000, bool((np.diff(stream.ts) >= 0).all())
(2000, True, True)
>>> topics = stream.topic_of[stream.items]  # 20 topics, so any one holds a small share
>>> bool((topics == topics[0]).mean() < 0.5)
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["EVENT_TYPES", "CatalogueSpec", "Stream", "synthesise"]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

#: Event types in the stream, and how often each occurs.
EVENT_TYPES = ("page_view", "add_to_cart", "purchase")
TYPE_SHARES = (0.90, 0.07, 0.03)
#: The first event's time (any fixed value: only differences matter).
EPOCH = 1_700_000_000.0
#: A session's home topic is the user's own this often, else one drawn by popularity.
HOME_SHARE = 0.5


@dataclass(frozen=True)
class CatalogueSpec:
    """The shape of the synthetic shop (never the stream's length)."""

    items: int = 100_000
    topic_size: int = 200
    zipf: float = 1.0
    in_topic: float = 0.85
    session_mean: float = 8.0
    events_per_user: float = 20.0
    rate: float = 5000.0  # events per second of event time
    gap_s: float = 2.0  # mean event-time gap between a session's events (short: a user's
    # sessions seldom overlap in a stream of a few minutes)
    seed: int = 7


@dataclass(frozen=True)
class Stream:
    """The events in time order, as parallel arrays (ids are indexes)."""

    users: IntArray
    items: IntArray
    kinds: IntArray  # index into EVENT_TYPES
    ts: FloatArray
    topic_of: IntArray  # item → topic
    n_users: int


class _Catalogue:
    """Popularity weights and the cumulative sums that draw items and topics from them."""

    def __init__(self, spec: CatalogueSpec, rng: np.random.Generator) -> None:
        n = spec.items
        weights = 1.0 / np.arange(1, n + 1, dtype=np.float64) ** spec.zipf
        n_topics = max(1, n // spec.topic_size)
        self.topic_of: IntArray = rng.permutation(n) % n_topics
        self.by_topic: IntArray = np.lexsort((np.arange(n), self.topic_of))  # grouped by topic
        self.topic_cum = np.cumsum(weights[self.by_topic])
        starts = np.searchsorted(self.topic_of[self.by_topic], np.arange(n_topics))
        ends = np.append(starts[1:], n)
        before = np.concatenate([[0.0], self.topic_cum])
        self.topic_base = before[starts]  # cumulative weight before each topic
        self.topic_weight = before[ends] - before[starts]
        self.topic_pick = np.cumsum(self.topic_weight)
        self.global_cum = np.cumsum(weights)

    def topics(self, rng: np.random.Generator, size: int) -> IntArray:
        """Topics drawn by popularity (the sum of their items')."""
        drawn = np.searchsorted(self.topic_pick, rng.random(size) * self.topic_pick[-1])
        return np.minimum(drawn, len(self.topic_pick) - 1)

    def in_topics(self, rng: np.random.Generator, topics: IntArray) -> IntArray:
        """One item per entry of `topics`, drawn by popularity within that topic."""
        targets = self.topic_base[topics] + rng.random(len(topics)) * self.topic_weight[topics]
        slots = np.minimum(np.searchsorted(self.topic_cum, targets), len(self.by_topic) - 1)
        return self.by_topic[slots]

    def anywhere(self, rng: np.random.Generator, size: int) -> IntArray:
        """Items drawn by popularity over the whole catalogue."""
        drawn = np.searchsorted(self.global_cum, rng.random(size) * self.global_cum[-1])
        return np.minimum(drawn, len(self.global_cum) - 1)


def _session_lengths(spec: CatalogueSpec, rng: np.random.Generator, events: int) -> IntArray:
    """Geometric session lengths (mean `session_mean`) adding up to exactly `events`."""
    lengths = rng.geometric(
        1.0 / spec.session_mean, size=int(events / spec.session_mean * 1.2) + 16
    )
    while lengths.sum() < events:
        lengths = np.concatenate([lengths, rng.geometric(1.0 / spec.session_mean, len(lengths))])
    cut = int(np.searchsorted(np.cumsum(lengths), events))
    lengths = lengths[: cut + 1].copy()
    lengths[-1] -= int(lengths.sum()) - events
    return lengths


def synthesise(spec: CatalogueSpec, events: int) -> Stream:
    """`events` events of the synthetic shop, in event-time order."""
    rng = np.random.default_rng(spec.seed)
    catalogue = _Catalogue(spec, rng)
    lengths = _session_lengths(spec, rng, events)
    n_sessions = len(lengths)
    n_users = max(1, int(events / spec.events_per_user))
    session_user = rng.integers(0, n_users, n_sessions)
    home = catalogue.topics(rng, n_users)
    session_topic = np.where(
        rng.random(n_sessions) < HOME_SHARE,
        home[session_user],
        catalogue.topics(rng, n_sessions),
    )
    session_of = np.repeat(np.arange(n_sessions), lengths)
    items = np.where(
        rng.random(events) < spec.in_topic,
        catalogue.in_topics(rng, session_topic[session_of]),
        catalogue.anywhere(rng, events),
    )
    kinds = np.searchsorted(np.cumsum(TYPE_SHARES), rng.random(events) * sum(TYPE_SHARES))
    starts = rng.random(n_sessions) * (events / spec.rate)
    gaps = rng.exponential(spec.gap_s, events)
    first = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    gaps[first] = 0.0
    within = np.cumsum(gaps) - np.repeat(np.cumsum(gaps)[first], lengths)
    ts = EPOCH + starts[session_of] + within
    order = np.argsort(ts, kind="stable")
    return Stream(
        users=session_user[session_of][order],
        items=items[order],
        kinds=np.minimum(kinds, len(EVENT_TYPES) - 1)[order],
        ts=ts[order],
        topic_of=catalogue.topic_of,
        n_users=n_users,
    )
