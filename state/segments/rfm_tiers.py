"""RFM tiers: the standard marketing segments from recency, frequency and monetary quintiles.

A customer gets three scores, 1 (worst) to 5 (best), from where their recency (days since the
last purchase; lower is better), frequency (purchases) and monetary value (spend) fall among
the quintile cut points of *all customers*, and a tier from the R score against the FM score,
`FM = (F + M) // 2` (their mean rounded down: the top FM grade takes both). The segments are
the eleven of Putler's RFM guide (https://www.putler.com/rfm-analysis/), whose R and FM ranges
overlap; the grid that resolves them is the R x F segment map copied across pandas RFM
notebooks (the `seg_map` regex table), read with FM for F, and with its worst cell, lowest on
every score, split off as Lost:

| R     | FM 1           | FM 2                | FM 3                | FM 4      | FM 5            |
|-------|----------------|---------------------|---------------------|-----------|-----------------|
| **5** | New customers  | Potential loyalists | Potential loyalists | Champions | Champions       |
| **4** | Promising      | Potential loyalists | Potential loyalists | Loyal     | Loyal           |
| **3** | About to sleep | About to sleep      | Need attention      | Loyal     | Loyal           |
| **2** | Hibernating    | Hibernating         | At risk             | At risk   | Can't lose them |
| **1** | Lost           | Hibernating         | At risk             | At risk   | Can't lose them |

Scores (ties matter: most customers buy once, and recency piles up at its cap): a value earns
one point per cut point it *strictly beats*, so a value equal to a cut point takes the worse
score: `F = 1 + #{c < f}`, `M = 1 + #{c < m}`, `R = 1 + #{c > r}`. The cut points are the
20/40/60/80% quantiles of the customers' values by the inverted-CDF rule (the smallest value
with at least that share of customers at or below it, numpy's `method="inverted_cdf"`), so
every cut point is a real value and integer frequencies never fall between integers.

Why a sample of customers and not a streaming quantile of the learned values (P², river's
`stats.Quantile`): quintiles are over customers at one moment, and the customers that matter
most for recency are the lapsed ones, who send no events. A quantile of the values seen at each
update weights customers by activity, never sees a lapsed customer's recency grow, and learns
recency 0 at every purchase; on real data it gets most tiers wrong
(docs/decisions/0017-rfm-quintiles-on-a-sample.md). So this keeps a uniform sample of
customers, each with their latest values: the `sample_size` customers whose salted 64-bit
hash of the id is smallest (a bottom-k sample, Cohen & Kaplan 2007). Membership does not
depend on arrival order, a sampled customer counts once however active, and the values sit in
sorted lists, so the cut points are exact quantiles of the sample at every moment,
independent of batching. Recency is kept as the last purchase time, and read against the
clock (the newest `now` learned).

>>> tiers = RFMTiers(min_customers=5)
>>> day = 86400.0
>>> for i in range(10):  # customer ci: last bought 20*i days ago, 10-i times, $100*(10-i) in all
...     tiers.learn_one(f"c{i}", 20.0 * i, 10 - i, 100.0 * (10 - i), now=200 * day)
>>> tiers.scores(0.0, 10, 1000.0), tiers.tier(0.0, 10, 1000.0)
((5, 5, 5), 'champions')
>>> tiers.tier(150.0, 9, 900.0), TIER_LABELS["cant_lose"]
('cant_lose', "Can't lose them")
>>> tiers.tier(365.0, 0, 0.0) is None  # never bought: no tier
True
"""

from __future__ import annotations

import hashlib
import heapq
from bisect import bisect_left, insort
from collections.abc import Mapping
from math import ceil
from typing import Any

import numpy as np

__all__ = [
    "QUANTILES",
    "TIERS",
    "TIER_LABELS",
    "Cuts",
    "RFMTiers",
    "fm_score",
    "score_higher_better",
    "score_lower_better",
    "score_map",
    "tier_of",
]

DAY_S = 86400.0
#: Cut points of (recency, frequency, monetary), four each.
Cuts = tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]
#: The cut-point levels: quintiles.
QUANTILES: tuple[float, ...] = (0.2, 0.4, 0.6, 0.8)

#: Tier ids, best first.
TIERS: tuple[str, ...] = (
    "champions",
    "loyal",
    "potential_loyalists",
    "new_customers",
    "promising",
    "need_attention",
    "about_to_sleep",
    "at_risk",
    "cant_lose",
    "hibernating",
    "lost",
)
#: Readable names, as marketing tools print them.
TIER_LABELS: dict[str, str] = {
    "champions": "Champions",
    "loyal": "Loyal",
    "potential_loyalists": "Potential loyalists",
    "new_customers": "New customers",
    "promising": "Promising",
    "need_attention": "Need attention",
    "about_to_sleep": "About to sleep",
    "at_risk": "At risk",
    "cant_lose": "Can't lose them",
    "hibernating": "Hibernating",
    "lost": "Lost",
}

# The table of the module docstring: _GRID[R - 1][FM - 1].
_GRID: tuple[tuple[str, ...], ...] = (
    ("lost", "hibernating", "at_risk", "at_risk", "cant_lose"),
    ("hibernating", "hibernating", "at_risk", "at_risk", "cant_lose"),
    ("about_to_sleep", "about_to_sleep", "need_attention", "loyal", "loyal"),
    ("promising", "potential_loyalists", "potential_loyalists", "loyal", "loyal"),
    ("new_customers", "potential_loyalists", "potential_loyalists", "champions", "champions"),
)


def fm_score(f: int, m: int) -> int:
    """The combined frequency-monetary score: the mean of F and M, rounded down.

    >>> fm_score(5, 4), fm_score(1, 2)
    (4, 1)
    """
    return (f + m) // 2


def tier_of(r: int, fm: int) -> str:
    """The tier id of an R score and an FM score, each 1..5 (the docstring's table).

    >>> tier_of(5, 5), tier_of(1, 5), tier_of(1, 1)
    ('champions', 'cant_lose', 'lost')
    """
    if not (1 <= r <= 5 and 1 <= fm <= 5):
        raise ValueError(f"scores must be 1..5, got R={r} FM={fm}")
    return _GRID[r - 1][fm - 1]


def score_map() -> dict[tuple[int, int], str]:
    """Every (R, FM) cell and its tier, for documentation and tests."""
    return {(r, fm): tier_of(r, fm) for r in range(1, 6) for fm in range(1, 6)}


def score_higher_better(value: float, cuts: tuple[float, ...]) -> int:
    """1 + the cut points the value strictly exceeds (frequency, monetary).

    >>> score_higher_better(1, (1, 1, 2, 4)), score_higher_better(2, (1, 1, 2, 4))
    (1, 3)
    """
    return 1 + sum(1 for c in cuts if c < value)


def score_lower_better(value: float, cuts: tuple[float, ...]) -> int:
    """1 + the cut points the value is strictly below (recency: a tie takes the worse score).

    >>> score_lower_better(365.0, (141.0, 365.0, 365.0, 365.0))
    1
    """
    return 1 + sum(1 for c in cuts if c > value)


def _replace(values: list[float], old: float, new: float) -> None:
    """Swap one occurrence of `old` for `new` in a sorted list, keeping it sorted.

    In place when `new` sorts where `old` was (a purchase of a few dollars rarely moves
    far): that skips two memmoves of the whole list tail.
    """
    if new == old:
        return
    i = bisect_left(values, old)
    j = bisect_left(values, new)
    if j == i or (j == i + 1 and new > old):
        values[i] = new
        return
    del values[i]
    insort(values, new)


def _rank(n: int, q: float) -> int:
    """0-based index of the inverted-CDF q-quantile among n sorted values."""
    return max(0, ceil(n * q) - 1)


class RFMTiers:
    """RFM scores and tiers against a uniform, bounded sample of customers' latest values.

    Parameters
    ----------
    sample_size
        Customers kept (bottom-k by hashed id); about 80 bytes each when pickled. Quantile
        ranks are off by about `sqrt(q(1-q)/sample_size)`, 0.7% at 4096 (decision 0017).
    cap_days
        Recency is capped here, as `tailor.state.profile.rfm.RFM` caps it.
    min_customers
        Warm-up: with fewer sampled customers every tier is None, because quintiles of a
        handful of customers (20 puts 4 in each) would relabel users at every purchase.
    seed
        Salts the id hash, so deployments can draw different samples; the same seed always
        draws the same one.

    Call `learn_one` at least at every purchase of a customer; other calls only move the
    clock. A customer never sampled or dropped from the sample costs one hash per call. From
    a user's features: `learn_one(user, f["recency_days"], f["purchases_total"],
    f["spend_total"], now=event.ts)`. Users whose state expired stay in the sample (lapsed
    customers are what recency is about); erasure must call `forget`.
    """

    def __init__(
        self,
        sample_size: int = 4096,
        cap_days: float = 365.0,
        min_customers: int = 20,
        seed: int = 0,
    ) -> None:
        if sample_size < 1 or min_customers < 1:
            raise ValueError("sample_size and min_customers must be >= 1")
        self.sample_size = sample_size
        self.cap_days = cap_days
        self.min_customers = min_customers
        self.seed = seed
        self.now: float | None = None
        # user -> (hash, last purchase ts, frequency, monetary)
        self._members: dict[str, tuple[int, float, float, float]] = {}
        self._heap: list[tuple[int, str]] = []  # (-hash, user): the largest hash on top
        self._last: list[float] = []  # the members' values, each list sorted
        self._freq: list[float] = []
        self._money: list[float] = []
        self._salt = seed.to_bytes(16, "little", signed=True)
        self._version = 0  # counts sample changes: the cut-point cache key with the clock
        self._cached: tuple[int, float, Cuts | None] = (-1, 0.0, None)

    @property
    def n_customers(self) -> int:
        """Customers in the sample (all customers learned, until there are `sample_size`)."""
        return len(self._members)

    def __contains__(self, user_id: object) -> bool:
        """True if the user is in the sample (erasure audits, tests)."""
        return user_id in self._members

    @property
    def ready(self) -> bool:
        """True once the warm-up is over and tiers are given."""
        return len(self._members) >= self.min_customers

    def _hash(self, user_id: str) -> int:
        digest = hashlib.blake2b(user_id.encode(), digest_size=8, salt=self._salt).digest()
        return int.from_bytes(digest, "little")

    def learn_one(
        self, user_id: str, recency_days: float, frequency: float, monetary: float, now: float
    ) -> None:
        """Record a customer's current values, measured at event time `now` (epoch seconds).

        Users who never bought (`frequency` <= 0) are not learned from; they still move the
        clock. The last purchase time is `now - recency_days`, kept to the millisecond so
        equal times stay equal.
        """
        if self.now is None or now > self.now:
            self.now = now
        if frequency <= 0:
            return
        last = round(now - recency_days * DAY_S, 3)
        old = self._members.get(user_id)
        if old is not None:
            if old[1:] != (last, frequency, monetary):
                self._update(user_id, old, last, frequency, monetary)
            return
        h = self._hash(user_id)
        if len(self._members) >= self.sample_size:
            if h >= -self._heap[0][0]:
                return
            self._evict()
        heapq.heappush(self._heap, (-h, user_id))
        self._add(user_id, h, last, frequency, monetary)

    def forget(self, user_id: str) -> None:
        """Drop a user from the sample (erasure). The next new customer takes the free place."""
        old = self._members.pop(user_id, None)
        if old is None:
            return
        self._remove_values(old)
        self._heap = [(-h, u) for u, (h, *_rest) in self._members.items()]
        heapq.heapify(self._heap)

    def _add(self, user_id: str, h: int, last: float, frequency: float, monetary: float) -> None:
        self._members[user_id] = (h, last, frequency, monetary)
        self._version += 1
        insort(self._last, last)
        insort(self._freq, frequency)
        insort(self._money, monetary)

    def _update(
        self,
        user_id: str,
        old: tuple[int, float, float, float],
        last: float,
        frequency: float,
        monetary: float,
    ) -> None:
        """A member's new values: only the dimensions that changed move in their lists."""
        self._members[user_id] = (old[0], last, frequency, monetary)
        self._version += 1
        _replace(self._last, old[1], last)
        _replace(self._freq, old[2], frequency)
        _replace(self._money, old[3], monetary)

    def _remove_values(self, old: tuple[int, float, float, float]) -> None:
        self._version += 1
        for values, value in ((self._last, old[1]), (self._freq, old[2]), (self._money, old[3])):
            del values[bisect_left(values, value)]

    def _evict(self) -> None:
        _neg_hash, user_id = heapq.heappop(self._heap)
        self._remove_values(self._members.pop(user_id))

    def cut_points(self) -> Cuts | None:
        """The (recency, frequency, monetary) quintile cut points now; None while warming up.

        Recency cut points are days at the clock: the i-th smallest recency belongs to the
        i-th latest purchase time. Cached until the sample or the clock moves.
        """
        now = self.now
        if len(self._members) < self.min_customers or now is None:
            return None
        version, at, cuts = self._cached
        if version == self._version and at == now and cuts is not None:
            return cuts
        n, cap = len(self._last), self.cap_days
        last, freq, money = self._last, self._freq, self._money
        ranks = [_rank(n, q) for q in QUANTILES]
        recency = tuple(min(cap, (now - last[n - 1 - i]) / DAY_S) for i in ranks)
        cuts = (recency, tuple(freq[i] for i in ranks), tuple(money[i] for i in ranks))
        self._cached = (self._version, now, cuts)
        return cuts

    def scores(
        self, recency_days: float, frequency: float, monetary: float
    ) -> tuple[int, int, int] | None:
        """(R, F, M), each 1..5 (5 best); None for a user who never bought or while warming up.

        `recency_days` is the user's recency at the clock (their own newest event time is
        close enough for a user scored at their update).
        """
        if frequency <= 0:
            return None
        cuts = self.cut_points()
        if cuts is None:
            return None
        r_cuts, f_cuts, m_cuts = cuts
        return (
            score_lower_better(recency_days, r_cuts),
            score_higher_better(frequency, f_cuts),
            score_higher_better(monetary, m_cuts),
        )

    def tier(self, recency_days: float, frequency: float, monetary: float) -> str | None:
        """The tier id (a key of `TIER_LABELS`); None for a user who never bought or in warm-up."""
        scores = self.scores(recency_days, frequency, monetary)
        if scores is None:
            return None
        r, f, m = scores
        return _GRID[r - 1][fm_score(f, m) - 1]

    def to_snapshot(self) -> dict[str, Any]:
        """Settings, clock, and the sample as ids plus one array per value; the heap and the
        sorted value lists are rebuilt from it (the same contents, so the same answers)."""
        members = self._members
        return {
            "sample_size": self.sample_size,
            "cap_days": self.cap_days,
            "min_customers": self.min_customers,
            "seed": self.seed,
            "now": self.now,
            "version": self._version,
            "users": list(members),
            "hashes": np.fromiter((m[0] for m in members.values()), np.uint64, len(members)),
            "values": np.array([m[1:] for m in members.values()], np.float64).reshape(-1, 3),
        }

    @classmethod
    def from_snapshot(cls, data: Mapping[str, Any]) -> RFMTiers:
        made = cls(data["sample_size"], data["cap_days"], data["min_customers"], data["seed"])
        made.now = data["now"]
        hashes = data["hashes"].tolist()
        values = data["values"].tolist()
        made._members = {
            user: (h, *row) for user, h, row in zip(data["users"], hashes, values, strict=True)
        }
        made._heap = [(-h, user) for user, h in zip(data["users"], hashes, strict=True)]
        heapq.heapify(made._heap)
        columns = [sorted(column) for column in zip(*values, strict=True)] or [[], [], []]
        made._last, made._freq, made._money = columns
        made._version = data["version"]
        return made
