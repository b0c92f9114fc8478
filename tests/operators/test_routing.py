"""Routing must be stable across processes (unlike `hash()`) and spread users evenly."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from operators.routing import partition_for, stream_key

ROOT = Path(__file__).resolve().parents[2]


def test_known_values_are_crc32() -> None:
    # Fixed values: any other language's CRC-32 (IEEE) gives the same partitions.
    assert [partition_for(u, 8) for u in ("alice", "bob", "carol")] == [7, 0, 3]
    assert partition_for("u1", 4) == 2
    assert partition_for("ü-ñ", 1000) == 192


def test_same_partitions_in_another_process_with_another_hash_seed() -> None:
    users = [f"user-{i}" for i in range(200)]
    here = [partition_for(u, 7) for u in users]
    code = (
        "from operators.routing import partition_for;"
        "print([partition_for(f'user-{i}', 7) for i in range(200)])"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == str(here)


def test_users_spread_over_all_partitions() -> None:
    counts = Counter(partition_for(f"user-{i}", 4) for i in range(20_000))
    assert sorted(counts) == [0, 1, 2, 3]
    assert all(4_500 < n < 5_500 for n in counts.values()), counts


def test_stream_key_and_bad_partition_count() -> None:
    assert stream_key("tailor", 3) == "tailor:events:3"
    with pytest.raises(ValueError):
        partition_for("u1", 0)
