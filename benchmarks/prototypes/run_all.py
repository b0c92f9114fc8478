"""Every scale-out prototype with 1 and 2 processes in one run, as a markdown table.

    flock /work/wt/measure.lock python -m benchmarks.prototypes.run_all [EVENTS]

Runs `baseline`, `option_a`, `option_b` and `option_c` (merging every batch, then every
5,000 clicks per worker) on the same EVENTS MovieLens-derived clicks in Bytewax cluster mode
(`common.run_cluster`), then the exchange cost per item (`exchange`). Ratios within the run
are what to compare: the machine's speed drifts between runs.
"""

from __future__ import annotations

import os
import sys
import time

from benchmarks.prototypes import exchange
from benchmarks.prototypes.common import run_cluster

FLOWS = [
    ("today: one constant key", "baseline", {}),
    ("A: replicas, deltas by flat_map", "option_a", {}),
    ("B: item shards, scatter/gather", "option_b", {}),
    ("C: B + user model state + replicated counts (merge each batch)", "option_c", {}),
    ("C, merge every 5,000 clicks", "option_c", {"PROTO_MERGE_EVERY": "5000"}),
]


def main() -> None:
    events = int(sys.argv[1]) if len(sys.argv) > 1 else 300_000
    print(
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores, "
        f"load {os.getloadavg()[0]:.2f}, {events:,} clicks"
    )
    print("| prototype | 1 process ev/s | 2 processes ev/s | 2/1 | vs today, 1 process |")
    print("|---|---|---|---|---|")
    base = None
    for label, module, env in FLOWS:
        ref = f"benchmarks.prototypes.{module}:get_flow"
        one = run_cluster(ref, 1, events, env)["events_per_s"]
        two = run_cluster(ref, 2, events, env)["events_per_s"]
        base = base or one
        print(
            f"| {label} | {one:,.0f} | {two:,.0f} | {two / one:.2f}x | {one / base:.2f}x |",
            flush=True,
        )
    print("\n| source batch | local µs/item | crossing µs/item | exchange µs/item |")
    print("|---|---|---|---|")
    for batch, n in ((1, 20_000), (1000, 400_000)):
        local, cross = exchange.measure(n, batch)
        print(f"| {batch} | {local:.2f} | {cross:.2f} | {cross - local:.2f} |", flush=True)
    print(f"load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
