"""The models' epoch-end snapshot whole and as bases plus changes, side by side in one run.

    flock /work/wt/measure.lock python -m benchmarks.snapshot_bases [--catalogue 100000]
        [--events 300000] [--epochs 5] [--epoch-events 50000] [--json]

The catalogue benchmark's synthetic stream (`benchmarks.catalogue_stream`: Zipf popularity,
sessions of related items) of `--events` events over `--catalogue` items is learned by the
models step as the worker builds it (default configuration, the hybrid). Then `--epochs`
epochs of `--epoch-events` more events each (50,000: 10 s at 5,000 events/s, the default
snapshot interval), and at each epoch's end the snapshot Bytewax asks the replica for:

- *whole*: `ModelsLogic.snapshot()` as the replica made it before bases (every component's
  whole `to_snapshot`);
- *bases*: the same under `tailor.state.increments.writing` with the replica's bases
  (`tailor.operators.bases.ReplicaBases`): references to the bases plus the changes since.

Both are timed on the same state, alternating which goes first, with the GC tuned as in the
worker. After each epoch the replica takes the bases that are due (`ReplicaBases.due`, which
runs after every batch, not at the epoch end, and takes one a batch: here it is called until
nothing is due); that time and the bases' bytes are reported too.
The first epoch's *bases* snapshot is whole (no base yet), as after a start or a resume.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.catalogue_stream import CatalogueSpec, Feeder, synthesise
from tailor.flows.config import load_config
from tailor.flows.runner import tune_gc
from tailor.flows.worker import model_params
from tailor.operators.bases import ReplicaBases
from tailor.operators.models import ModelsLogic
from tailor.state import increments


def timed_ms(make: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    out = make()
    return (time.perf_counter() - started) * 1e3, out


def iter_cuts(bases: ReplicaBases) -> Any:
    """Every base due now, as batches one after another would take them."""
    while cuts := bases.due():
        yield from cuts


def run(items: int, events: int, epochs: int, epoch_events: int) -> list[dict[str, Any]]:
    config = load_config(env={})
    params = model_params(config)
    logic = ModelsLogic(params)
    state = config.state
    spec = CatalogueSpec(items=items)
    stream = synthesise(spec, events + epochs * epoch_events)
    feeder = Feeder(stream, dict(params.recs.event_weights), state.history_len, state.max_purchased)
    feeder.run(logic.state.recs, 0, events, sample_every=events)
    bases = ReplicaBases(workers=1)
    bases.replica = "replica:0"

    def with_bases() -> bytes:
        with increments.writing(bases.writing):
            return logic.snapshot()

    rows = []
    start = events
    for epoch in range(epochs):
        if epoch:
            feeder.run(logic.state.recs, start, start + epoch_events, sample_every=epoch_events)
            start += epoch_events
        ways = [("whole", logic.snapshot), ("bases", with_bases)]
        took: dict[str, float] = {}
        size: dict[str, int] = {}
        for name, make in ways if epoch % 2 == 0 else ways[::-1]:
            took[name], blob = timed_ms(make)
            size[name] = len(blob)
        cut_ms, cuts = timed_ms(lambda: list(iter_cuts(bases)))
        rows.append(
            {
                "epoch": epoch,
                "whole_ms": took["whole"],
                "whole_mb": size["whole"] / 1e6,
                "bases_ms": took["bases"],
                "bases_mb": size["bases"] / 1e6,
                "cut_ms": cut_ms,
                "cut_mb": sum(len(c.blob) for c in cuts if c.blob is not None) / 1e6,
                "cuts": sum(1 for c in cuts if c.blob is not None),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalogue", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--epoch-events", type=int, default=50_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    tune_gc()
    rows = run(args.catalogue, args.events, args.epochs, args.epoch_events)
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(
        f"catalogue {args.catalogue:,} items, {args.events:,} events, epochs {args.epoch_events:,}"
    )
    print(
        "| epoch | whole: MB / ms | bases + changes: MB / ms | bases taken after it: n / MB / ms |"
    )
    print("|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['epoch']} | {r['whole_mb']:.1f} / {r['whole_ms']:.1f} | "
            f"{r['bases_mb']:.2f} / {r['bases_ms']:.1f} | "
            f"{r['cuts']} / {r['cut_mb']:.1f} / {r['cut_ms']:.1f} |"
        )


if __name__ == "__main__":
    main()
