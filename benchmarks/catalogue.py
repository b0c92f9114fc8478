"""A catalogue at scale: memory, top-K, snapshot bytes and pause of the default models.

`python -m benchmarks.catalogue [--sizes 100000,1000000] [--events 500000,1000000] [--json]`
streams a synthetic shop (`benchmarks.catalogue_stream`: Zipf popularity, sessions within a
topic, seeded) through the models as the worker builds them: `ModelsLogic` with the default
configuration (`model_params(load_config())`), its `LiveRecs` driven the way the models step
drives it, event by event. For each event the user's history and purchases are kept as the
per-user state step keeps them (`history_len`, `max_purchased`), the models learn
(`LiveRecs.learn`, what `ModelsLogic._learn` calls), and one event in `--sample-every` is
followed by the user's served list (`LiveRecs.recommend`, what `ModelsLogic._recommend` calls). The
segment half of the models is built but not fed (it does not grow with the catalogue).

Reported per catalogue size:

* learning µs per event (all events; those that were a self-test probe; the others);
* top-K: median and p99 µs of the served list, over the samples of the stream's second half,
  and of each component's own top-K for users at the end of the stream;
* memory: RSS growth of this process while streaming, per distinct item seen (it includes the
  models' per-user parts, and the benchmark's own histories, given separately);
* snapshot: bytes and time of `ModelsLogic.snapshot()` (the pause at each epoch end; median
  of three; also with the cyclic GC off), of loading it back, and of each part pickled alone;
* what changed in the last `--window-events` events (10 s at 5,000 events/s): entries of each
  part touched, and the bytes an incremental snapshot would have written.

No timed test; run it under the measurement lock (`flock /work/wt/measure.lock ...`).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.catalogue_snapshot import (
    Change,
    changed_pairs,
    changes,
    cooc_pairs,
    fingerprints,
    parts,
    timed_pickle,
)
from benchmarks.catalogue_stream import CatalogueSpec, Feeder, Timings, synthesise
from tailor.flows.config import load_config
from tailor.flows.worker import model_params
from tailor.operators.models import ModelsLogic, ModelsState
from tailor.state import snapshots
from tailor.state.recs.cooc_counts import CoOccurrence
from tailor.state.recs.cooccurrence import CoocRecommender
from tailor.state.recs.hybrid import Hybrid

#: Users whose component top-K is timed at the end of the stream.
COMPONENT_USERS = 300
#: Times the whole snapshot is taken at the end (the median is reported).
SNAPSHOTS = 3


def rss_bytes(field_name: str = "VmRSS:") -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field_name):
            return int(line.split()[1]) * 1024
    return 0


def _us(samples: list[float], q: float) -> float:
    if not samples:
        return 0.0
    return float(np.quantile(np.asarray(samples), q)) * 1e6


def _component_topk(logic: ModelsLogic, feeder: Feeder, k: int) -> dict[str, dict[str, float]]:
    """Median and p99 µs of each recommender component's own top-K for the last users seen."""
    recs = logic.state.recs
    hybrid = recs.models["hybrid"]
    assert isinstance(hybrid, Hybrid)
    last = feeder.stream.users[-20 * COMPONENT_USERS :][::-1].tolist()
    users = [feeder._user(u) for u in dict.fromkeys(last)][:COMPONENT_USERS]
    out: dict[str, dict[str, float]] = {}
    for name, model in hybrid.components.items():
        samples = []
        for user in users:
            history = tuple(feeder.histories[user])
            exclude = recs._exclusions(history, frozenset(feeder.purchased.get(user, {})))
            started = time.perf_counter()
            model.recommend(user, history, 0.0, k, exclude)
            samples.append(time.perf_counter() - started)
        out[name] = {"median_us": _us(samples, 0.5), "p99_us": _us(samples, 0.99)}
    return out


def _pauses(logic: ModelsLogic) -> tuple[list[float], bytes]:
    """Seconds of each of a few snapshots, and the last one."""
    pauses, data = [], b""
    for _ in range(SNAPSHOTS):
        started = time.perf_counter()
        data = logic.snapshot()
        pauses.append(time.perf_counter() - started)
    return pauses, data


def _snapshot(logic: ModelsLogic) -> dict[str, Any]:
    """The whole snapshot as Bytewax takes it (median of a few), the same with the cyclic GC
    off (pickling a numpy array per user allocates enough to set off a full collection, whose
    cost grows with the heap), loading it, and each part."""
    pauses, data = _pauses(logic)
    gc.disable()
    try:
        quiet, _ = _pauses(logic)
    finally:
        gc.enable()
    started = time.perf_counter()
    ModelsState.from_snapshot(snapshots.decode(data, "models"))
    load_s = time.perf_counter() - started
    by_part = {}
    for part in parts(logic.state):
        size, seconds = timed_pickle(part.payload())
        by_part[part.name] = {"bytes": size, "ms": seconds * 1e3}
    return {
        "bytes": len(data),
        "pause_ms": statistics.median(pauses) * 1e3,
        "pause_max_ms": max(pauses) * 1e3,
        "pause_gc_off_ms": statistics.median(quiet) * 1e3,
        "load_ms": load_s * 1e3,
        "parts": by_part,
    }


@dataclass
class Watched:
    """What streaming left behind: timings, memory, and the changes of the last window."""

    timings: Timings
    rss_growth: int
    bookkeeping: int  # the feeder's own histories, not the models'
    seen_before_window: int
    changed: dict[str, Change]  # per snapshot part, over the window
    pairs: Change  # co-occurrence (item, neighbour) pairs, over the window


def _cooc(logic: ModelsLogic) -> CoOccurrence:
    hybrid = logic.state.recs.models["hybrid"]
    assert isinstance(hybrid, Hybrid)
    recommender = hybrid.components["cooc"]
    assert isinstance(recommender, CoocRecommender)
    return recommender.cooc


def stream_through(logic: ModelsLogic, feeder: Feeder, window: int, sample_every: int) -> Watched:
    """Every event of the feeder's stream through the models; memory is read before the last
    `window` events, whose changes are fingerprinted (outside the timed calls)."""
    recs, cooc, events = logic.state.recs, _cooc(logic), len(feeder.stream.items)
    gc.collect()
    rss_before = rss_bytes()
    cut = max(0, events - window)
    timings = feeder.run(recs, 0, cut, sample_every)
    rss_growth = rss_bytes() - rss_before
    seen = len(cooc._ids)
    before, pairs_before = fingerprints(logic.state), cooc_pairs(cooc)
    tail = feeder.run(recs, cut, events, sample_every)
    timings.learn_probe += tail.learn_probe
    timings.learn_plain += tail.learn_plain
    timings.served += tail.served
    return Watched(
        timings,
        rss_growth,
        feeder.bookkeeping_bytes(),
        seen,
        changes(before, fingerprints(logic.state)),
        changed_pairs(pairs_before, cooc_pairs(cooc)),
    )


def _learning(timings: Timings, events: int) -> dict[str, Any]:
    probe, plain = timings.learn_probe, timings.learn_plain
    served = [s for n, s in timings.served if n >= events // 2]  # the second half
    return {
        "learn_us_per_event": (sum(probe) + sum(plain)) / events * 1e6,
        "learn_probe_us": _us(probe, 0.5),
        "learn_probe_mean_us": sum(probe) / max(len(probe), 1) * 1e6,
        "probes": len(probe),
        "learn_plain_us": sum(plain) / max(len(plain), 1) * 1e6,
        "served_median_us": _us(served, 0.5),
        "served_p99_us": _us(served, 0.99),
        "served_samples": len(served),
    }


def _incremental(snapshot: dict[str, Any], watched: Watched) -> dict[str, Any]:
    """What a snapshot of only the changed entries would write, by rows and by pairs."""
    by_part = snapshot["parts"]
    for name, change in watched.changed.items():
        by_part[name]["changed"] = asdict(change)
    by_rows = sum(by_part[name]["bytes"] * c.weight_share for name, c in watched.changed.items())
    finer = by_part["cooc"]["bytes"] * (
        watched.pairs.weight_share - watched.changed["cooc"].weight_share
    )
    return {
        "incremental_bytes_estimate": by_rows,
        "cooc_pairs_changed": asdict(watched.pairs),
        "incremental_pairs_bytes_estimate": by_rows + finer,
    }


def measure(spec: CatalogueSpec, events: int, window: int, sample_every: int) -> dict[str, Any]:
    """Stream `events` events of a catalogue of `spec.items` and measure; one dict."""
    started, load_before = time.perf_counter(), os.getloadavg()[0]
    config = load_config(env={})
    params = model_params(config)
    logic = ModelsLogic(params)
    state = config.state
    weights = dict(params.recs.event_weights)
    feeder = Feeder(synthesise(spec, events), weights, state.history_len, state.max_purchased)
    watched = stream_through(logic, feeder, window, sample_every)
    seen = len(_cooc(logic)._ids)
    snapshot = _snapshot(logic)
    models_growth = watched.rss_growth - watched.bookkeeping
    return {
        "items": spec.items,
        "events": events,
        "items_seen": seen,
        "items_seen_before_window": watched.seen_before_window,
        "users": len(feeder.histories),
        "leading_list": logic.state.recs.models["hybrid"].leading,  # type: ignore[attr-defined]
        **_learning(watched.timings, events),
        "components_topk": _component_topk(logic, feeder, params.recs.k),
        "rss_growth_bytes": watched.rss_growth,
        "bookkeeping_bytes": watched.bookkeeping,
        "bytes_per_item_seen": models_growth / max(watched.seen_before_window, 1),
        "peak_rss_bytes": rss_bytes("VmHWM:"),
        "snapshot": snapshot,
        "snapshot_bytes_per_item_seen": snapshot["bytes"] / max(seen, 1),
        "window_events": min(window, events),
        **_incremental(snapshot, watched),
        "wall_s": time.perf_counter() - started,
        "load_average": [load_before, os.getloadavg()[0]],  # 1-minute, before and after
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": _machine(),
    }


def _machine() -> str:
    """CPU model, cores and Python: where the figures were taken."""
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}"


def _mb(n: float) -> str:
    return f"{n / 1e6:,.1f}"


def print_tables(results: list[dict[str, Any]]) -> None:
    """Markdown: one row per size, then each size's snapshot parts."""
    print(
        "| catalogue | events | items seen | users | learn µs/event (probe / other) "
        "| served top-K µs p50 / p99 | RSS growth MB (per item seen) | snapshot MB "
        "(per item) | pause ms (max) | load ms | changed in window MB (share) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        snap = r["snapshot"]
        print(
            f"| {r['items']:,} | {r['events']:,} | {r['items_seen']:,} | {r['users']:,} "
            f"| {r['learn_us_per_event']:,.0f} ({r['learn_probe_mean_us']:,.0f} / "
            f"{r['learn_plain_us']:,.0f}) | {r['served_median_us']:,.0f} / "
            f"{r['served_p99_us']:,.0f} | {_mb(r['rss_growth_bytes'])} "
            f"({r['bytes_per_item_seen']:,.0f} B) | {_mb(snap['bytes'])} "
            f"({r['snapshot_bytes_per_item_seen']:,.0f} B) | {snap['pause_ms']:,.0f} "
            f"({snap['pause_max_ms']:,.0f}) | {snap['load_ms']:,.0f} "
            f"| {_mb(r['incremental_bytes_estimate'])} "
            f"({r['incremental_bytes_estimate'] / snap['bytes']:.0%}) |"
        )
    for r in results:
        print(
            f"\n{r['items']:,} items: served list {r['leading_list']!r}; component top-K µs "
            + ", ".join(
                f"{n} {v['median_us']:,.0f} / {v['p99_us']:,.0f}"
                for n, v in r["components_topk"].items()
            )
        )
        pairs = r["cooc_pairs_changed"]
        print(
            f"\nIn the last {r['window_events']:,} events: co-occurrence pairs changed "
            f"{pairs['changed']:,} of {pairs['entries']:,} ({pairs['weight_share']:.0%}); "
            f"an incremental snapshot by rows ~{_mb(r['incremental_bytes_estimate'])} MB, "
            f"by co-occurrence pairs ~{_mb(r['incremental_pairs_bytes_estimate'])} MB. "
            f"Pause with the cyclic GC off: {r['snapshot']['pause_gc_off_ms']:,.0f} ms."
        )
        print(f"\n| part | MB | pickle ms | entries | changed in {r['window_events']:,} events |")
        print("|---|---|---|---|---|")
        for name, part in r["snapshot"]["parts"].items():
            change = part.get("changed")
            moved = (
                ""
                if change is None
                else (
                    f"{change['entries']:,} | {change['changed']:,} ({change['weight_share']:.0%})"
                )
            )
            print(f"| {name} | {_mb(part['bytes'])} | {part['ms']:,.1f} | {moved or ' | '} |")


def _ints(text: str) -> list[int]:
    return [int(float(v)) for v in text.split(",") if v.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000", help="catalogue sizes")
    parser.add_argument("--events", default="500000,1000000", help="events per size")
    parser.add_argument("--window-events", type=int, default=50_000)
    parser.add_argument("--sample-every", type=int, default=20)
    parser.add_argument("--topic-size", type=int, default=CatalogueSpec.topic_size)
    parser.add_argument("--zipf", type=float, default=CatalogueSpec.zipf)
    parser.add_argument("--events-per-user", type=float, default=CatalogueSpec.events_per_user)
    parser.add_argument("--seed", type=int, default=CatalogueSpec.seed)
    parser.add_argument("--json", action="store_true", help="one JSON document instead")
    args = parser.parse_args()
    sizes, counts = _ints(args.sizes), _ints(args.events)
    if len(counts) == 1:
        counts *= len(sizes)
    if len(counts) != len(sizes):
        parser.error("--events needs one count, or one per size")
    base = CatalogueSpec(
        topic_size=args.topic_size,
        zipf=args.zipf,
        events_per_user=args.events_per_user,
        seed=args.seed,
    )
    results = []
    for items, events in zip(sizes, counts, strict=True):
        result = measure(replace(base, items=items), events, args.window_events, args.sample_every)
        results.append(result)
        if not args.json:
            print(f"{items:,} items done in {result['wall_s']:.0f} s", file=sys.stderr, flush=True)
    if args.json:
        print(json.dumps({"spec": asdict(base), "results": results}, indent=2))
    else:
        print_tables(results)


if __name__ == "__main__":
    main()
