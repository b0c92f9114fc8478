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

`Feeder` turns the arrays into what the models step sees, event by event: ids as strings, and
each user's history and purchases as the per-user state step keeps them.

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

import sys
import time
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from tailor.state.recs.base import Interaction
from tailor.state.recs.hybrid import Hybrid
from tailor.state.recs.live_recs import LiveRecs

__all__ = ["EVENT_TYPES", "CatalogueSpec", "Feeder", "Stream", "Timings", "synthesise"]

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


@dataclass
class Timings:
    """Learning and serving samples of one stretch of the stream (seconds)."""

    learn_probe: list[float] = field(default_factory=list)
    learn_plain: list[float] = field(default_factory=list)
    served: list[tuple[int, float]] = field(default_factory=list)  # (event index, seconds)


class Feeder:
    """Turns the stream's index arrays into what the models step sees, event by event: ids as
    strings, and each user's history and purchases as the per-user state step keeps them."""

    def __init__(self, stream: Stream, weights: dict[str, int], history_len: int, bought: int):
        self.stream = stream
        self.history_len = history_len
        self.max_purchased = bought
        self.weights = [weights.get(kind, 1) for kind in EVENT_TYPES]
        self.user_names: list[str | None] = [None] * stream.n_users
        self.item_names: list[str | None] = [None] * len(stream.topic_of)
        self.category_names = [f"topic-{t}" for t in range(int(stream.topic_of.max()) + 1)]
        self.histories: dict[str, list[str]] = {}
        self.purchased: dict[str, dict[str, None]] = {}

    def run(self, recs: LiveRecs, start: int, stop: int, sample_every: int) -> Timings:
        """Events `start`..`stop`: learn each, and serve the user after one in `sample_every`."""
        s, timings = self.stream, Timings()
        hybrid = recs.models.get("hybrid")
        probes = hybrid if isinstance(hybrid, Hybrid) else None
        clock = time.perf_counter
        rows = zip(
            range(start, stop),
            s.users[start:stop].tolist(),
            s.items[start:stop].tolist(),
            s.kinds[start:stop].tolist(),
            s.ts[start:stop].tolist(),
            strict=True,
        )
        for n, u, i, kind, ts in rows:
            user, item = self._user(u), self._item(i)
            history, purchased = self._push(user, item, kind)
            category = self.category_names[int(s.topic_of[i])]
            event = Interaction(user, item, ts, self.weights[kind], (category,))
            before = probes.probes if probes is not None else 0
            started = clock()
            recs.learn(event, history[:-1], purchased)
            took = clock() - started
            if probes is not None and probes.probes != before:
                timings.learn_probe.append(took)
            else:
                timings.learn_plain.append(took)
            if n % sample_every == 0:
                started = clock()
                recs.recommend(user, history, purchased, ts)
                timings.served.append((n, clock() - started))
        return timings

    def _user(self, index: int) -> str:
        name = self.user_names[index]
        if name is None:
            name = self.user_names[index] = f"user-{index}"
        return name

    def _item(self, index: int) -> str:
        name = self.item_names[index]
        if name is None:
            name = self.item_names[index] = f"item-{index}"
        return name

    def _push(self, user: str, item: str, kind: int) -> tuple[tuple[str, ...], frozenset[str]]:
        """The user's history after this event (distinct, newest last) and purchases."""
        history = self.histories.get(user)
        if history is None:
            history = self.histories[user] = []
        if item in history:
            history.remove(item)
        history.append(item)
        del history[: -self.history_len]
        bought = self.purchased.setdefault(user, {})
        if EVENT_TYPES[kind] == "purchase":
            bought.pop(item, None)
            bought[item] = None
            while len(bought) > self.max_purchased:
                del bought[next(iter(bought))]
        return tuple(history), frozenset(bought)

    def bookkeeping_bytes(self) -> int:
        """What this benchmark's stand-in for the per-user state step holds (not the models)."""
        lists = sum(sys.getsizeof(h) for h in self.histories.values())
        sets = sum(sys.getsizeof(p) for p in self.purchased.values())
        tables = sys.getsizeof(self.histories) + sys.getsizeof(self.purchased)
        return lists + sets + tables + 16 * (len(self.user_names) + len(self.item_names))
