"""What each large model part costs to snapshot whole and as changes since a base, at a large
synthetic catalogue, and the models step's snapshot with its parts as bases plus changes.

    flock /work/wt/measure.lock python -m benchmarks.snapshot_increments \
        [--catalogue 100000] [--events 300000] [--more 50000] [--old main]

The catalogue benchmark's stream (`benchmarks.catalogue_stream`) of `--events` events goes
through the models step's recommenders; then every incremental part takes its base (its whole
`to_snapshot`, then `mark`), `--more` events are learned (50,000: ten seconds of traffic at
5,000 events a second), and each part is timed, the median of `--repeats`:

* *whole*: `pickle.dumps(part.to_snapshot())`, what its parent stored at every epoch before;
* *changes*: `pickle.dumps(part.changes_since(mark))`, what it stores now;
* *old*, with `--old REF`: the whole snapshot by the classes of git `REF` (`state/` of that
  commit imported as a package of its own), having learned the same stream.

Then the whole models snapshot (`ModelsLogic.snapshot`'s encoding) is timed all whole and
inside `tailor.state.increments.writing` with the bases known, and read back through
`tailor.state.increments.reading` to check that every part is restored as it is.
"""

from __future__ import annotations

import argparse
import atexit
import importlib
import pickle
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import fields
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.catalogue_stream import CatalogueSpec, Feeder, synthesise
from tailor.flows.config import load_config
from tailor.flows.worker import model_params
from tailor.operators.models import ModelsLogic, ModelsState
from tailor.state import increments, snapshots
from tests.state.increment_support import same

ROOT = Path(__file__).resolve().parents[1]
Timed = tuple[float, int]  # median ms, bytes


def built(items: int, events: int, more: int) -> tuple[ModelsLogic, Feeder, Feeder]:
    """The models step after `events` of the stream, a feeder holding the rest, and a second
    feeder of the same stream from its start (for the old classes)."""
    config = load_config(env={})
    params = model_params(config)
    logic = ModelsLogic(params)
    stream = synthesise(CatalogueSpec(items=items), events + more)
    state = config.state
    weights = dict(params.recs.event_weights)
    feeder, again = (
        Feeder(stream, weights, state.history_len, state.max_purchased) for _ in range(2)
    )
    feeder.run(logic.state.recs, 0, events, sample_every=events)
    return logic, feeder, again


def old_recs(package: ModuleType, logic: ModelsLogic) -> Any:
    """The models step's recommenders built by the classes of `package` (as `ModelsLogic`)."""
    rec_settings = importlib.import_module(f"{package.__name__}.rec_settings")
    live_recs = importlib.import_module(f"{package.__name__}.live_recs")
    params, recs = logic.params, logic.params.recs
    given = {f.name: getattr(params.rec_settings, f.name) for f in fields(params.rec_settings)}
    return live_recs.LiveRecs.build(
        k=recs.k,
        shares=recs.variant_shares,
        models=recs.variant_models,
        settings=rec_settings.RecSettings(**given),
        salt=recs.variant_salt,
        exclude_seen=recs.exclude_seen,
        max_per_category=recs.max_per_category,
    )


def parts(recs: Any) -> dict[str, Any]:
    """The hybrid's large parts by name: what `increments.part` is called on."""
    c = recs.models["hybrid"].components
    found = {
        "cooc": getattr(c["cooc"], "cooc", None),
        "fism": getattr(c["isgd"], "model", None),
        "category": c["category"],
        "segment": c["segment"],
        "trending": getattr(c["trending"], "trending", None),
        "mostpop": getattr(c["mostpop"], "trending", None),
    }
    return {name: part for name, part in found.items() if part is not None}


def median_ms(make: Callable[[], bytes], repeats: int) -> Timed:
    took, size = [], 0
    for _ in range(repeats):
        started = time.perf_counter()
        size = len(make())
        took.append(time.perf_counter() - started)
    return statistics.median(took) * 1e3, size


def dumped(data: Any) -> bytes:
    return pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL)


def whole_of(part: Any) -> bytes:
    return dumped(part.to_snapshot())


def changes_of(part: Any, mark: int) -> bytes:
    return dumped(part.changes_since(mark))


def old_state(ref: str) -> ModuleType:
    """`state/` of git `ref` as the package `old_state` (imports rewritten to it)."""
    names = subprocess.run(
        ["git", "ls-tree", "--name-only", ref, "state/"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    where = Path(tempfile.mkdtemp(prefix="old_state_"))
    atexit.register(shutil.rmtree, where, True)
    (where / "old_state").mkdir()
    for name in names:
        text = subprocess.run(
            ["git", "show", f"{ref}:{name}"], cwd=ROOT, check=True, capture_output=True, text=True
        ).stdout
        text = text.replace("from state ", "from old_state ").replace(
            "from state.", "from old_state."
        )
        (where / "old_state" / Path(name).name).write_text(text)
    sys.path.insert(0, str(where))
    return importlib.import_module("old_state")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--catalogue", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--more", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--old", default="", help="a git ref whose classes to time whole")
    args = parser.parse_args()
    started = time.perf_counter()
    logic, feeder, again = built(args.catalogue, args.events, args.more)
    print(f"built in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    old = None
    if args.old:  # learned from the same stream, so its objects lie in memory as learned
        recs = old_recs(old_state(args.old), logic)
        again.run(recs, 0, args.events + args.more, args.events + args.more)
        old = parts(recs)
        print(f"the old classes built in {time.perf_counter() - started:.0f} s", file=sys.stderr)

    found = parts(logic.state.recs)
    bookkeeping = increments.Writing()
    with increments.writing(bookkeeping):
        logic.state.to_snapshot()  # names the parts, all whole
    bases: dict[str, dict[str, Any]] = {}
    marks: dict[str, int] = {}
    for name, component in bookkeeping.pending.items():
        base = component.to_snapshot()
        mark = component.mark()
        bases[name] = {"mark": mark, "whole": base}
        bookkeeping.references[name] = increments.Reference(
            name, mark, len(dumped(base)), id(component)
        )
        marks[next(k for k, v in found.items() if v is component)] = mark
    bookkeeping.pending.clear()

    started = time.perf_counter()
    feeder.run(logic.state.recs, args.events, args.events + args.more, args.more)
    print(f"{args.more} more events in {time.perf_counter() - started:.0f} s", file=sys.stderr)

    rows: list[tuple[str, Timed | None, Timed, Timed | None]] = []
    for name, component in found.items():
        whole = median_ms(partial(whole_of, component), args.repeats)
        changes = None
        if name in marks:
            changes = median_ms(partial(changes_of, component, marks[name]), args.repeats)
        before = None
        if old is not None:
            before = median_ms(partial(whole_of, old[name]), args.repeats)
        rows.append((name, before, whole, changes))
    print("| part | old whole ms | MB | whole ms | MB | changes ms | MB |")
    print("|---|---|---|---|---|---|---|")
    for name, before, whole, changes in rows:
        cells = [
            f"{t[0]:.1f} | {t[1] / 1e6:.2f}" if t is not None else "- | -"
            for t in (before, whole, changes)
        ]
        print(f"| {name} | " + " | ".join(cells) + " |")

    def all_whole() -> bytes:
        return snapshots.encode("models", logic.state.to_snapshot())

    def incremental() -> bytes:
        with increments.writing(bookkeeping):
            return snapshots.encode("models", logic.state.to_snapshot())

    for label, make in (("all whole", all_whole), ("bases + changes", incremental)):
        ms, size = median_ms(make, args.repeats)
        print(f"models snapshot, {label}: {ms:.1f} ms, {size / 1e6:.2f} MB")
    with increments.reading(bases):
        back = ModelsState.from_snapshot(snapshots.decode(incremental(), "models"))
    for name, part in parts(back.recs).items():
        same(part.to_snapshot(), found[name].to_snapshot(), name)
    print("read back through the bases: every part as it is")


if __name__ == "__main__":
    main()
