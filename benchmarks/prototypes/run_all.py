"""Every scale-out prototype with 1 and 2 processes in one run, as a markdown table.

    flock /work/wt/measure.lock python -m benchmarks.prototypes.run_all [EVENTS]

Runs `pipeline` (no models), `baseline`, `option_a`, `option_b` and `option_c` (merging
every batch, then every 5,000 clicks per worker) on the same EVENTS MovieLens-derived
clicks in Bytewax cluster mode (`common.run_cluster`), then the exchange cost per item
(`exchange`). Ratios within the run are what to compare: the machine's speed drifts
between runs. Next to the wall-clock rates, each process's CPU time per event
(`common.cpu_per_event`, start-up subtracted): "2/1 on idle cores" is the 1-process CPU
per event over the busiest of 2 processes, the ratio an otherwise idle 2-core machine would
show if nothing but CPU limited it.
"""

from __future__ import annotations

import os
import sys
import time

from benchmarks.prototypes import exchange
from benchmarks.prototypes.common import cpu_per_event

FLOWS = [
    ("pipeline only (source, user step)", "pipeline", {}),
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
    print(
        "| prototype | 1 process ev/s | 2 processes ev/s | 2/1 wall | CPU µs/ev 1 proc |"
        " CPU µs/ev 2 procs (busiest) | 2/1 on idle cores |"
    )
    print("|---|---|---|---|---|---|---|")
    for label, module, env in FLOWS:
        ref = f"benchmarks.prototypes.{module}:get_flow"
        one, cpu1, _ = cpu_per_event(ref, 1, events, env)
        two, cpu2, busiest = cpu_per_event(ref, 2, events, env)
        wall1, wall2 = one["events_per_s"], two["events_per_s"]
        print(
            f"| {label} | {wall1:,.0f} | {wall2:,.0f} | {wall2 / wall1:.2f}x | {cpu1:.1f} |"
            f" {cpu2:.1f} ({busiest:.1f}) | {cpu1 / busiest:.2f}x |",
            flush=True,
        )
    print("\n| source batch | local µs/item | crossing µs/item | exchange µs/item |")
    print("|---|---|---|---|")
    for batch, n in ((1, 20_000), (1000, 400_000)):
        local, cross = exchange.measure(n, batch)
        print(f"| {batch} | {local:.2f} | {cross:.2f} | {cross - local:.2f} |", flush=True)
    print("\n| item type crossing | CPU µs per item (both processes) |")
    print("|---|---|")
    for kind, cpu in exchange.by_type(100_000).items():
        print(f"| {kind} | {cpu:.1f} |", flush=True)
    print(f"load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
