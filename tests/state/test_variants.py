"""Variant assignment: pinned outputs, cross-process stability, realised shares, salts, errors.

The pinned values were computed once with the algorithm in `tailor.state.recs.variants` (blake2b-64
of
`salt + "\\x00" + user_id`, top 53 bits / 2**53) and are hard-coded so that any change of hash,
encoding, byte order or interval rule fails here instead of silently reshuffling live users.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tailor.state.recs.variants import Variants, unit_point

REPO = Path(__file__).resolve().parents[2]
FIFTY = {"control": 0.5, "treatment": 0.5}
SPLITS = [FIFTY, {"a": 0.1, "b": 0.9}, {"x": 0.2, "y": 0.3, "z": 0.5}]


def test_unit_point_is_the_documented_blake2b_bits() -> None:
    # blake2b(b"tailor\x00alice", digest_size=8) = 91b0b080d742516c; >> 11 = 5126017968171082.
    assert unit_point("tailor", "alice") == 5126017968171082 / 2**53
    assert unit_point("tailor", "bob") == 228269548751959 / 2**53  # digest 067ce12aee62bc21


PINNED = {
    # id: (50/50, 10/90, 20/30/50) with the default salt
    "alice": ("treatment", "b", "z"),  # point 0.5691
    "bob": ("control", "a", "x"),  # 0.0253
    "carol": ("control", "b", "y"),  # 0.4143
    "dave": ("treatment", "b", "z"),  # 0.8987
    "erin": ("control", "b", "y"),  # 0.2915
    "42": ("control", "b", "x"),  # 0.1495
    "user-99999": ("control", "a", "x"),  # 0.0395
    "ü-東京": ("control", "b", "y"),  # 0.3716, non-ASCII goes through UTF-8
}


@pytest.mark.parametrize("user_id", sorted(PINNED))
def test_pinned_assignments(user_id: str) -> None:
    got = tuple(Variants(shares).assign(user_id) for shares in SPLITS)
    assert got == PINNED[user_id]


def test_pinned_assignments_with_another_salt() -> None:
    ab = Variants(FIFTY, salt="exp-2")
    got = [ab.assign(u) for u in ("alice", "bob", "carol", "dave", "erin", "42")]
    assert got == ["treatment", "treatment", "control", "treatment", "control", "treatment"]


def test_intervals_are_half_open_in_sorted_name_order() -> None:
    # Insertion order must not matter: z/y/x given backwards still maps [0,.2)->x, [.2,.5)->y.
    backwards = Variants({"z": 0.5, "y": 0.3, "x": 0.2})
    assert list(backwards.shares) == ["x", "y", "z"]
    for user_id in (f"u{i}" for i in range(2000)):
        p = unit_point("tailor", user_id)
        expected = "x" if p < 0.2 else "y" if p < 0.5 else "z"
        assert backwards.assign(user_id) == expected


def test_stable_across_processes_with_different_hash_seeds() -> None:
    ids = [f"user-{i}" for i in range(1000)]
    here = [Variants({"x": 0.2, "y": 0.3, "z": 0.5}).assign(u) for u in ids]
    code = (
        "import sys\n"
        "from tailor.state.recs.variants import Variants\n"
        "v = Variants({'x': 0.2, 'y': 0.3, 'z': 0.5})\n"
        "ids = [f'user-{i}' for i in range(1000)]\n"
        "print(' '.join(v.assign(u) for u in ids))\n"
        "print(hash(ids[0]))\n"
    )
    seeds = {"12345", "987654"} - {os.environ.get("PYTHONHASHSEED", "")}
    for seed in sorted(seeds):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True
        )
        assert out.returncode == 0, out.stderr
        there, child_hash = out.stdout.splitlines()
        # The child's str hash really differs (so hash() would have reshuffled users) ...
        assert int(child_hash) != hash(ids[0])
        # ... and the assignments do not.
        assert there.split() == here


@pytest.mark.parametrize("shares", SPLITS, ids=["50-50", "10-90", "20-30-50"])
def test_realised_shares_within_one_percent(shares: dict[str, float]) -> None:
    n = 100_000
    variants = Variants(shares)
    counts = Counter(variants.assign(f"synthetic-{i}") for i in range(n))
    assert set(counts) == set(shares)
    for name, share in shares.items():
        assert abs(counts[name] / n - share) < 0.01, (name, counts[name] / n)


def test_single_variant_takes_everyone() -> None:
    only = Variants({"only": 1.0})
    assert {only.assign(f"u{i}") for i in range(1000)} == {"only"}


@pytest.mark.parametrize("shares", SPLITS, ids=["50-50", "10-90", "20-30-50"])
def test_new_salt_reshuffles_about_as_much_as_independence_predicts(
    shares: dict[str, float],
) -> None:
    # Two independent splits disagree for 1 - sum(p^2) of users: 0.5, 0.18, 0.62.
    n = 20_000
    old, new = Variants(shares, salt="tailor"), Variants(shares, salt="tailor-v2")
    moved = sum(old.assign(f"u{i}") != new.assign(f"u{i}") for i in range(n)) / n
    expected = 1.0 - sum(p * p for p in shares.values())
    assert abs(moved - expected) < 0.02, (moved, expected)


def test_shares_repr_and_pickle() -> None:
    ab = Variants({"treatment": 0.25, "control": 0.75}, salt="exp")
    assert ab.shares == {"control": 0.75, "treatment": 0.25}
    assert list(ab.shares) == ["control", "treatment"]
    ab.shares["control"] = 0.0  # a copy: the split cannot be edited from outside
    assert ab.shares["control"] == 0.75
    assert repr(ab) == "Variants({'control': 0.75, 'treatment': 0.25}, salt='exp')"
    clone = pickle.loads(pickle.dumps(ab))
    assert clone == ab and clone.salt == "exp"
    assert [clone.assign(f"u{i}") for i in range(500)] == [ab.assign(f"u{i}") for i in range(500)]
    assert ab != Variants({"treatment": 0.25, "control": 0.75}, salt="other")


def test_sum_within_tolerance_is_accepted() -> None:
    thirds = Variants({"a": 1 / 3, "b": 1 / 3, "c": 1 / 3})
    assert {thirds.assign(f"u{i}") for i in range(200)} == {"a", "b", "c"}
    Variants({"a": 0.5 + 5e-10, "b": 0.5})  # 1 + 5e-10: inside 1e-9


@pytest.mark.parametrize(
    ("shares", "salt", "message"),
    [
        ({}, "tailor", "empty"),
        ({"a": 0.5, "b": 0.4}, "tailor", "sum to 1"),
        ({"a": 0.6, "b": 0.6}, "tailor", "sum to 1"),
        ({"a": 0.5 + 2e-9, "b": 0.5}, "tailor", "sum to 1"),
        ({"a": 1.0, "b": 0.0}, "tailor", "'b'"),
        ({"a": 1.5, "b": -0.5}, "tailor", "'b'"),
        ({"a": float("nan"), "b": 1.0}, "tailor", "'a'"),
        ({"a": float("inf")}, "tailor", "'a'"),
        ({"a": 1.0}, "bad\x00salt", "NUL"),
    ],
)
def test_validation_errors(shares: dict[str, float], salt: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Variants(shares, salt=salt)
