"""Does Bytewax's cluster mode cost CPU by itself? One CPU-bound flow, `run_main` vs a
one-process `cluster_main`.

    flock /work/wt/measure.lock python -m benchmarks.prototypes.cluster_poll [main|cluster]

In cluster mode (0.21.1 `src/run.rs`) the dataflow runs on a worker thread while the main
thread wakes every 1 ms to take the GIL and check signals; `run_main` checks signals from the
worker loop itself. The flow maps 1,000,000 integers through ~15 µs of Python each and drops
them. Prints wall and CPU seconds of the process and its context switches; run both modes
alternately in one locked run.
"""

from __future__ import annotations

import resource
import socket
import sys
import time

import bytewax.operators as op
from bytewax.connectors.stdio import StdOutSink
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSource, cluster_main, run_main

ITEMS = 1_000_000


def busy(x: int) -> int:
    """~15 µs of pure Python."""
    total = 0
    for i in range(300):
        total += i
    return total + x


def build() -> Dataflow:
    flow = Dataflow("cluster_poll")
    numbers = op.input("in", flow, TestingSource(range(ITEMS), batch_size=1000))
    mapped = op.map("busy", numbers, busy)
    op.output("out", op.filter("none", mapped, lambda _: False), StdOutSink())
    return flow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main(mode: str) -> None:
    start, before = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
    if mode == "main":
        run_main(build())
    else:
        cluster_main(build(), [f"127.0.0.1:{free_port()}"], 0)
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    print(
        f"{mode}: wall {time.perf_counter() - start:.2f} s, CPU {cpu:.2f} s, "
        f"context switches {after.ru_nvcsw - before.ru_nvcsw} voluntary / "
        f"{after.ru_nivcsw - before.ru_nivcsw} involuntary"
    )


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "main")
