"""Snapshot bytes per epoch when co-occurrence rows are split over S shard keys.

    python -m benchmarks.prototypes.snapshot_bytes [EVENTS] [EPOCH_EVENTS]

Bytewax snapshots every key whose state changed in an epoch, each key whole. With the rows
in S shards (option B/C's `ShardRows`), an epoch's snapshot is the shards it touched. This
replays EVENTS MovieLens clicks (cycled as new users, `common.movielens`) into S shards,
and at every EPOCH_EVENTS clicks (an epoch: 10 s of the default snapshot interval at the
rate) counts the shards touched and pickles them; it prints the mean per epoch against the
whole model (S = 1 is today's single key). It also counts the distinct (row, neighbour) pairs
changed per epoch: a changelog of them (two int32 ids and an int32 count: 12 bytes a pair)
is what a snapshot that "costs what changed" would write. No timing of the flow; pickle ms
are indicative.
"""

from __future__ import annotations

import pickle
import sys
import time
import zlib

from benchmarks.prototypes.common import HISTORY, movielens
from benchmarks.prototypes.option_b import WINDOW, ShardRows


def run(
    events: list[tuple[str, str, float]], shards: int, epoch: int
) -> tuple[float, float, float, float, float]:
    """(shards touched, MB pickled, ms pickling, MB of changelog: per epoch; MB of the model)."""
    rows = [ShardRows() for _ in range(shards)]
    history: dict[str, list[str]] = {}
    touched: set[int] = set()
    pairs: set[tuple[str, str]] = set()
    sizes, times, counts, logs = [], [], [], []
    for n, (user, item, _ts) in enumerate(events, 1):
        mine = history.setdefault(user, [])
        previous = tuple(p for p in mine[-WINDOW:] if p != item)
        s = zlib.crc32(item.encode()) % shards
        rows[s].learn(item, previous, True)
        touched.add(s)
        pairs.update((item, p) for p in previous)
        pairs.update((p, item) for p in previous)
        pairs.add((item, ""))  # its click count
        for p in previous:
            t = zlib.crc32(p.encode()) % shards
            rows[t].learn(p, (item,), False)
            touched.add(t)
        if item in mine:
            mine.remove(item)
        mine.append(item)
        del mine[:-HISTORY]
        if n % epoch == 0:
            started = time.perf_counter()
            size = sum(len(pickle.dumps(rows[t], pickle.HIGHEST_PROTOCOL)) for t in touched)
            times.append((time.perf_counter() - started) * 1000)
            sizes.append(size / 1e6)
            counts.append(len(touched))
            logs.append(len(pairs) * 12 / 1e6)
            touched, pairs = set(), set()
    whole = sum(len(pickle.dumps(r, pickle.HIGHEST_PROTOCOL)) for r in rows) / 1e6
    k = len(sizes)
    return sum(counts) / k, sum(sizes) / k, sum(times) / k, sum(logs) / k, whole


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 300_000
    epoch = int(sys.argv[2]) if len(sys.argv) > 2 else 10_000
    events = movielens(n)
    print(f"{n:,} clicks, an epoch every {epoch:,}")
    for shards in (1, 8, 64, 512):
        touched, mb, ms, log, whole = run(events, shards, epoch)
        print(
            f"S={shards:>4}: {touched:6.1f} shards touched/epoch, {mb:6.2f} MB/epoch "
            f"({ms:5.0f} ms pickling), changelog {log:.2f} MB/epoch, whole model {whole:.2f} MB"
        )
