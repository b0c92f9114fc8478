"""Deterministic A/B variant assignment: hash a user id into a share of the population.

Each user gets a point in [0, 1) from a hash of the experiment salt and the user id, and the
variant whose cumulative-share interval holds that point (variants in sorted name order, so
the same shares always give the same intervals). This is the hash-and-partition assignment of
Kohavi, Longbotham, Sommerfield & Henne, "Controlled experiments on the web: survey and
practical guide" (Data Mining and Knowledge Discovery, 2009), section 4.1: no assignment table
to store or share, every worker computes the same answer, and a user keeps their variant for
the whole experiment. A new salt is a new experiment: users are reshuffled independently of
the old split, so carry-over effects of one experiment do not line up with the next.

Why blake2b and not Python's `hash()`: `hash()` of a str is salted per process
(PYTHONHASHSEED, on by default since Python 3.3), so two Bytewax workers, a restart or another
machine would put the same user in different variants. blake2b is a fixed function of the
bytes on every platform and Python version.

>>> ab = Variants({"control": 0.5, "treatment": 0.5})
>>> ab.assign("u1"), ab.assign("u2"), ab.assign("u3")
('treatment', 'treatment', 'control')
>>> ab.assign("u1") == Variants({"treatment": 0.5, "control": 0.5}).assign("u1")  # order-free
True
>>> ab
Variants({'control': 0.5, 'treatment': 0.5}, salt='tailor')
"""

from __future__ import annotations

import hashlib
import math
from bisect import bisect_right
from collections.abc import Mapping
from itertools import accumulate
from typing import Any

__all__ = ["SUM_TOLERANCE", "Variants", "unit_point"]

SUM_TOLERANCE = 1e-9


def unit_point(salt: str, user_id: str) -> float:
    """The user's point in [0, 1): blake2b-64 of UTF-8 `salt + "\\x00" + user_id`, big-endian.

    Only the top 53 bits are used: a float64 holds 53, and dividing the full 64-bit integer by
    2**64 rounds the largest digests up to exactly 1.0, outside every interval.
    """
    data = (salt + "\x00" + user_id).encode("utf-8")
    digest = hashlib.blake2b(data, digest_size=8).digest()
    return (int.from_bytes(digest, "big") >> 11) / float(1 << 53)


def _validated(shares: Mapping[str, float]) -> tuple[tuple[str, ...], tuple[float, ...]]:
    """Names in sorted order and their shares; ValueError on anything that is not a split."""
    if not shares:
        raise ValueError("shares is empty: an experiment needs at least one variant")
    names = tuple(sorted(shares))
    values = tuple(float(shares[name]) for name in names)
    for name, share in zip(names, values, strict=True):
        if not share > 0.0 or not math.isfinite(share):  # `not >` also catches NaN
            raise ValueError(f"share of variant {name!r} must be a finite number > 0, got {share}")
    total = math.fsum(values)
    if abs(total - 1.0) > SUM_TOLERANCE:
        raise ValueError(f"shares must sum to 1 (within {SUM_TOLERANCE}), they sum to {total!r}")
    return names, values


class Variants:
    """A fixed split of users into named variants by shares that sum to 1.

    Parameters
    ----------
    shares
        Variant name -> fraction of users, each > 0, summing to 1 within 1e-9.
    salt
        The experiment's name in the hash; a different salt reshuffles every user. It may not
        contain NUL, the separator, so no two (salt, user id) pairs hash the same bytes.
    """

    __slots__ = ("_edges", "_names", "_salt", "_values")

    def __init__(self, shares: Mapping[str, float], salt: str = "tailor") -> None:
        if "\x00" in salt:
            raise ValueError("salt may not contain NUL ('\\x00'), the salt/user id separator")
        self._names, self._values = _validated(shares)
        self._salt = salt
        # Upper edges of all intervals but the last: the last variant takes the rest of [0, 1),
        # so a sum a rounding error short of 1 leaves no point unassigned.
        self._edges = tuple(accumulate(self._values[:-1]))

    def assign(self, user_id: str) -> str:
        """The user's variant: the one whose interval [lo, hi) contains their point."""
        return self._names[bisect_right(self._edges, unit_point(self._salt, user_id))]

    @property
    def shares(self) -> dict[str, float]:
        """Variant -> share, in the canonical (sorted) order; a copy, so the split stays fixed."""
        return dict(zip(self._names, self._values, strict=True))

    @property
    def salt(self) -> str:
        return self._salt

    def __repr__(self) -> str:
        return f"Variants({self.shares!r}, salt={self._salt!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Variants):
            return NotImplemented
        return (self._names, self._values, self._salt) == (
            other._names,
            other._values,
            other._salt,
        )

    def __hash__(self) -> int:
        return hash((self._names, self._values, self._salt))

    def to_snapshot(self) -> dict[str, Any]:
        return {"shares": self.shares, "salt": self._salt}

    @classmethod
    def from_snapshot(cls, data: Mapping[str, Any]) -> Variants:
        return cls(data["shares"], data["salt"])
