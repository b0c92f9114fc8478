"""The population the segmenter standardises over and re-fits on: a sample of users, each once.

Batch segmentation standardises over the *users* (one row each, as they stand now); an online
scaler fed at learn points standardises over the *points*, weighted by activity and taken at
a purchase, where recency is 0. On Online Retail that difference alone kept the online
segments from agreeing with batch k-means even when re-seeded from exact batch centres
(docs/design/reseeding.md). So the segmenter's scaler is this sample: the `size` users whose
salted 64-bit hash of the id is smallest (a bottom-k sample, Cohen & Kaplan 2007; the RFM
tiers keep the same kind), each with the encoded values of their latest learn point; means
and variances are over those users. Membership does not depend on arrival order, and the
sample is bounded, so every replica of the models holds the same one.

The same profiles, aged to a boundary (`age_profile`: what the profile would read then with no
new event), are what a re-fit clusters (`tailor.state.segments.refit`); from the first re-fit on,
the moments are those of the aged profiles, fixed until the next (`fix`).

>>> sample = ProfileSample(("spend",), size=2)
>>> for user, spend in (("a", 1.0), ("b", 3.0), ("a", 5.0)):
...     sample.learn_one(user, {"spend": spend}, {"spend": spend}, None, ts=0.0)
>>> sample.means, sample.vars, len(sample)
({'spend': 4.0}, {'spend': 1.0}, 2)
>>> sample.transform_one({"spend": 6.0})
{'spend': 2.0}
"""

from __future__ import annotations

import hashlib
import heapq
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tailor.state.profile.session import Session

__all__ = ["ProfileSample", "SampledProfile", "age_profile"]

DAY_S = 86400.0
#: Running sums are recomputed exactly after this many changes (subtraction drifts).
_EXACT_EVERY = 4096


@dataclass(frozen=True, slots=True)
class SampledProfile:
    """A sampled user's latest learn point: encoded values (the scaler's), the raw features
    (for aging), the device, and the event time of the point."""

    encoded: Mapping[str, float]
    features: Mapping[str, float]
    device: str | None
    ts: float


def age_profile(
    features: Mapping[str, float],
    age_s: float,
    horizons: Mapping[str, float],
    cap_days: float = 365.0,
) -> dict[str, float]:
    """A profile as it would read `age_s` seconds after it was taken, from the profile alone:
    recency grows (to `cap_days`), the open session closes once the age passes its horizon
    (`Session.closed`), and a feature whose `horizons` entry is shorter than the age reads 0
    (a view window, the purchases of the RFM window). Exact for recency, the session and
    windows the age has left behind, approximate inside a window (only the user's state
    knows when its events were: `UserState.aged_features` is the exact form)."""
    out = dict(features)
    if age_s <= 0:
        return out
    if age_s > horizons.get("session_events", math.inf):
        out = Session.closed(out)
    if "recency_days" in out:
        out["recency_days"] = min(cap_days, out["recency_days"] + age_s / DAY_S)
    for name, horizon in horizons.items():
        if name in out and age_s > horizon:
            out[name] = 0.0
    return out


class ProfileSample:
    """A bottom-k sample of users' latest encoded profiles, with mean and variance over them.

    Parameters
    ----------
    features
        The encoded dimensions, in order.
    size
        Users kept (the `size` smallest salted hashes).
    seed
        Salts the hash, so another seed draws another sample.
    """

    def __init__(self, features: Sequence[str], size: int = 4096, seed: int = 42) -> None:
        if size < 1:
            raise ValueError(f"sample size must be >= 1, got {size}")
        self.features = tuple(features)
        self.size = size
        self.seed = seed
        self._salt = seed.to_bytes(16, "little", signed=True)
        self._members: dict[str, tuple[int, SampledProfile]] = {}
        self._heap: list[tuple[int, str]] = []  # (-hash, user): the largest hash on top
        self._sums = dict.fromkeys(self.features, 0.0)
        self._squares = dict.fromkeys(self.features, 0.0)
        self._changes = 0
        self._means: dict[str, float] = dict.fromkeys(self.features, 0.0)
        self._vars: dict[str, float] = dict.fromkeys(self.features, 0.0)
        #: Moments fixed by `fix` (over the profiles aged to a re-fit), used instead of the
        #: running ones from then on.
        self.fixed: tuple[dict[str, float], dict[str, float]] | None = None

    @property
    def means(self) -> dict[str, float]:
        return self._means if self.fixed is None else self.fixed[0]

    @property
    def vars(self) -> dict[str, float]:
        return self._vars if self.fixed is None else self.fixed[1]

    def fix(self, encoded: Sequence[Mapping[str, float]]) -> None:
        """Standardise from now on over `encoded` (the sampled profiles aged to a re-fit's
        moment): users as they stand then, as batch sees them, not as of their learn points
        (on Online Retail every learn point is a purchase, so recency there is always 0)."""
        means, variances = {}, {}
        for f in self.features:
            column = [e[f] for e in encoded]
            mean = math.fsum(column) / len(column)
            means[f] = mean
            variances[f] = math.fsum((v - mean) ** 2 for v in column) / len(column)
        self.fixed = (means, variances)

    @property
    def changes(self) -> int:
        """Updates the sample took so far (a user added, evicted or updated)."""
        return self._changes

    def __len__(self) -> int:
        return len(self._members)

    def __contains__(self, user_id: object) -> bool:
        return user_id in self._members

    def _hash(self, user_id: str) -> int:
        digest = hashlib.blake2b(user_id.encode(), digest_size=8, salt=self._salt).digest()
        return int.from_bytes(digest, "little")

    def learn_one(
        self,
        user_id: str,
        encoded: Mapping[str, float],
        features: Mapping[str, float],
        device: str | None,
        ts: float,
    ) -> None:
        """Record a user's latest learn point (a user outside the sample changes nothing)."""
        old = self._members.get(user_id)
        profile = SampledProfile(dict(encoded), dict(features), device, ts)
        if old is not None:
            self._account(old[1].encoded, -1.0)
            self._members[user_id] = (old[0], profile)
        else:
            h = self._hash(user_id)
            if len(self._members) >= self.size:
                if h >= -self._heap[0][0]:
                    return
                _, evicted = heapq.heappop(self._heap)
                self._account(self._members.pop(evicted)[1].encoded, -1.0)
            heapq.heappush(self._heap, (-h, user_id))
            self._members[user_id] = (h, profile)
        self._account(profile.encoded, 1.0)
        self._refresh()

    def forget(self, user_id: str) -> None:
        """Drop a user (erasure); the next new user with a small enough hash takes the place."""
        old = self._members.pop(user_id, None)
        if old is None:
            return
        self._account(old[1].encoded, -1.0)
        self._heap = [(-h, u) for u, (h, _p) in self._members.items()]
        heapq.heapify(self._heap)
        self._refresh()

    def _account(self, encoded: Mapping[str, float], sign: float) -> None:
        for f in self.features:
            value = encoded[f]
            self._sums[f] += sign * value
            self._squares[f] += sign * value * value

    def _refresh(self) -> None:
        """Means and variances from the sums; the sums recomputed exactly now and then."""
        self._changes += 1
        if self._changes % _EXACT_EVERY == 0:
            self._exact()
        n = len(self._members)
        for f in self.features:
            mean = self._sums[f] / n if n else 0.0
            self._means[f] = mean
            self._vars[f] = max(0.0, self._squares[f] / n - mean * mean) if n else 0.0

    def _exact(self) -> None:
        encoded = [p.encoded for _h, p in self._members.values()]
        for f in self.features:
            self._sums[f] = math.fsum(e[f] for e in encoded)
            self._squares[f] = math.fsum(e[f] * e[f] for e in encoded)

    def transform_one(self, x: Mapping[str, float]) -> dict[str, float]:
        """Standardised over the sampled users; a dimension with no spread reads 0 (as
        River's `StandardScaler` does)."""
        out = {}
        for f, value in x.items():
            std = math.sqrt(self.vars.get(f, 0.0))
            out[f] = (value - self.means.get(f, 0.0)) / std if std > 0 else 0.0
        return out

    def profiles(self) -> list[SampledProfile]:
        """The sampled users' profiles, in hash order (independent of arrival order)."""
        return [p for _h, p in sorted(self._members.values(), key=lambda hp: hp[0])]

    def to_snapshot(self) -> dict[str, Any]:
        """Settings, members and the running sums as plain data (the sums as they are, not
        recomputed: a resumed run must standardise to the same bits as an uninterrupted one)."""
        members = {
            user: (h, dict(p.encoded), dict(p.features), p.device, p.ts)
            for user, (h, p) in self._members.items()
        }
        return {"features": self.features, "size": self.size, "seed": self.seed} | {
            "members": members,
            "sums": dict(self._sums),
            "squares": dict(self._squares),
            "changes": self._changes,
            "fixed": self.fixed,
        }

    @classmethod
    def from_snapshot(cls, data: Mapping[str, Any]) -> ProfileSample:
        made = cls(data["features"], data["size"], data["seed"])
        for user, (h, encoded, features, device, ts) in data["members"].items():
            made._members[user] = (h, SampledProfile(encoded, features, device, ts))
        made._heap = [(-h, u) for u, (h, _p) in made._members.items()]
        heapq.heapify(made._heap)
        made._sums, made._squares = dict(data["sums"]), dict(data["squares"])
        made._changes = data["changes"] - 1  # `_refresh` counts one
        made._refresh()
        made.fixed = data["fixed"]
        return made
