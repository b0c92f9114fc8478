"""A catalogue at scale: memory, top-K, snapshot bytes and pause of the default models.

`python -m benchmarks.catalogue [--sizes 100000,1000000] [--events 500000,1000000] [--json]`
streams a synthetic shop (`benchmarks.catalogue_stream`: Zipf popularity, sessions within a
topic, seeded) through the models as the worker builds them: `ModelsLogic` with the default
configuration (`model_params(load_config())`), its `LiveRecs` driven the way the models step
drives it, event by event. For each event the user's history and purchases are kept as the
per-user state step keeps them (`history_len`, `max_purchased`), the models learn
(`LiveRecs.learn`, what `ModelsLogic._learn` calls), and one event in `--sample-every` is
followed by the user's served list (`LiveRecs.recommend`, what `ModelsLogic._draft` calls). The
segment half of the models is built but not fed (it does not grow with the catalogue).

Reported per catalogue size:

* learning µs per event (all events; those that were a self-test probe; the others);
* top-K: median and p99 µs of the served list, over the samples of the stream's second half,
  and of each component's own top-K for users at the end of the stream;
* memory: RSS growth of this process while streaming, per distinct item seen (it includes the
  models' per-user parts, and the benchmark's own histories, given separately);
* snapshot: bytes and time of `ModelsLogic.snapshot()` (the pause at each epoch end; median
  of three), of loading it back, and of each part pickled alone;
* what changed in the last `--window-events` events (10 s at 5,000 events/s): entries of each
  part touched, and the bytes an incremental snapshot would have written.

No timed test; run it under the measurement lock (`flock /work/wt/measure.lock ...`).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import pickle
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field, replace
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
from benchmarks.catalogue_stream import EVENT_TYPES, CatalogueSpec, Stream, synthesise
from flows.config import load_config
from flows.worker import model_params
from operators.models import ModelsLogic
from state.hybrid import Hybrid
from state.live_recs import LiveRecs
from state.recommender import Interaction

#: Users whose component top-K is timed at the end of the stream.
COMPONENT_USERS = 300
#: Times the whole snapshot is taken at the end (the median is reported).
SNAPSHOTS = 3


@dataclass
class Timings:
    """Learning and serving samples of one stretch of the stream (seconds)."""

    learn_probe: list[float] = field(default_factory=list)
    learn_plain: list[float] = field(default_factory=list)
    served: list[tuple[int, float]] = field(default_factory=list)  # (event index, seconds)


class Feeder:
    """Turns the stream's index arrays into what the models step sees, event by event: ids as
    strings, and each user's history and purchases as the per-user state step keeps them."""

    def __init__(self, stream: Stream, weights: dict[str, int], history_len: int, bought: int):
        self.stream = stream
        self.history_len = history_len
        self.max_purchased = bought
        self.weights = [weights.get(kind, 1) for kind in EVENT_TYPES]
        self.user_names: list[str | None] = [None] * stream.n_users
        self.item_names: list[str | None] = [None] * len(stream.topic_of)
        self.category_names = [f"topic-{t}" for t in range(int(stream.topic_of.max()) + 1)]
        self.histories: dict[str, list[str]] = {}
        self.purchased: dict[str, dict[str, None]] = {}

    def run(self, recs: LiveRecs, start: int, stop: int, sample_every: int) -> Timings:
        """Events `start`..`stop`: learn each, and serve the user after one in `sample_every`."""
        s, timings = self.stream, Timings()
        hybrid = recs.models.get("hybrid")
        probes = hybrid if isinstance(hybrid, Hybrid) else None
        clock = time.perf_counter
        rows = zip(
            range(start, stop),
            s.users[start:stop].tolist(),
            s.items[start:stop].tolist(),
            s.kinds[start:stop].tolist(),
            s.ts[start:stop].tolist(),
            strict=True,
        )
        for n, u, i, kind, ts in rows:
            user, item = self._user(u), self._item(i)
            history, purchased = self._push(user, item, kind)
            category = self.category_names[int(s.topic_of[i])]
            event = Interaction(user, item, ts, self.weights[kind], (category,))
            before = probes.probes if probes is not None else 0
            started = clock()
            recs.learn(event, history[:-1], purchased)
            took = clock() - started
            if probes is not None and probes.probes != before:
                timings.learn_probe.append(took)
            else:
                timings.learn_plain.append(took)
            if n % sample_every == 0:
                started = clock()
                recs.recommend(user, history, purchased, ts)
                timings.served.append((n, clock() - started))
        return timings

    def _user(self, index: int) -> str:
        name = self.user_names[index]
        if name is None:
            name = self.user_names[index] = f"user-{index}"
        return name

    def _item(self, index: int) -> str:
        name = self.item_names[index]
        if name is None:
            name = self.item_names[index] = f"item-{index}"
        return name

    def _push(self, user: str, item: str, kind: int) -> tuple[tuple[str, ...], frozenset[str]]:
        """The user's history after this event (distinct, newest last) and purchases."""
        history = self.histories.get(user)
        if history is None:
            history = self.histories[user] = []
        if item in history:
            history.remove(item)
        history.append(item)
        del history[: -self.history_len]
        bought = self.purchased.setdefault(user, {})
        if EVENT_TYPES[kind] == "purchase":
            bought.pop(item, None)
            bought[item] = None
            while len(bought) > self.max_purchased:
                del bought[next(iter(bought))]
        return tuple(history), frozenset(bought)

    def bookkeeping_bytes(self) -> int:
        """What this benchmark's stand-in for the per-user state step holds (not the models)."""
        lists = sum(sys.getsizeof(h) for h in self.histories.values())
        sets = sum(sys.getsizeof(p) for p in self.purchased.values())
        tables = sys.getsizeof(self.histories) + sys.getsizeof(self.purchased)
        return lists + sets + tables + 16 * (len(self.user_names) + len(self.item_names))


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


def _snapshot(logic: ModelsLogic) -> dict[str, Any]:
    """The whole snapshot as Bytewax takes it (median of a few), loading it, and each part."""
    pauses, data = [], b""
    for _ in range(SNAPSHOTS):
        started = time.perf_counter()
        data = logic.snapshot()
        pauses.append(time.perf_counter() - started)
    started = time.perf_counter()
    pickle.loads(data)
    load_s = time.perf_counter() - started
    by_part = {}
    for part in parts(logic.state):
        size, seconds = timed_pickle(part.payload())
        by_part[part.name] = {"bytes": size, "ms": seconds * 1e3}
    return {
        "bytes": len(data),
        "pause_ms": statistics.median(pauses) * 1e3,
        "pause_max_ms": max(pauses) * 1e3,
        "load_ms": load_s * 1e3,
        "parts": by_part,
    }


def measure(spec: CatalogueSpec, events: int, window: int, sample_every: int) -> dict[str, Any]:
    """Stream `events` events of a catalogue of `spec.items` and measure; one dict."""
    started, load_before = time.perf_counter(), os.getloadavg()[0]
    stream = synthesise(spec, events)
    config = load_config(env={})
    params = model_params(config)
    logic = ModelsLogic(params)
    recs = logic.state.recs
    feeder = Feeder(
        stream,
        dict(params.recs.event_weights),
        config["state"]["history_len"],
        config["state"]["max_purchased"],
    )
    gc.collect()
    rss_before = rss_bytes()
    cut = max(0, events - window)
    timings = feeder.run(recs, 0, cut, sample_every)
    rss_after = rss_bytes()
    hybrid = recs.models["hybrid"]
    assert isinstance(hybrid, Hybrid)
    seen = len(hybrid.components["cooc"].cooc._ids)  # type: ignore[attr-defined]
    bookkeeping = feeder.bookkeeping_bytes()
    cooc = hybrid.components["cooc"].cooc  # type: ignore[attr-defined]
    before, pairs_before = fingerprints(logic.state), cooc_pairs(cooc)
    tail = feeder.run(recs, cut, events, sample_every)
    changed: dict[str, Change] = changes(before, fingerprints(logic.state))
    pairs = changed_pairs(pairs_before, cooc_pairs(cooc))
    seen_final = len(hybrid.components["cooc"].cooc._ids)  # type: ignore[attr-defined]
    snapshot = _snapshot(logic)
    for name, change in changed.items():
        snapshot["parts"][name]["changed"] = asdict(change)
    incremental = sum(
        snapshot["parts"][name]["bytes"] * change.weight_share for name, change in changed.items()
    )
    cooc_bytes = snapshot["parts"]["cooc"]["bytes"]
    by_pair = cooc_bytes * (pairs.weight_share - changed["cooc"].weight_share)
    probe = timings.learn_probe + tail.learn_probe
    plain = timings.learn_plain + tail.learn_plain
    served = [s for n, s in timings.served + tail.served if n >= events // 2]
    growth = rss_after - rss_before
    return {
        "items": spec.items,
        "events": events,
        "items_seen": seen_final,
        "items_seen_before_window": seen,
        "users": len(feeder.histories),
        "leading_list": hybrid.leading,
        "learn_us_per_event": (sum(probe) + sum(plain)) / events * 1e6,
        "learn_probe_us": _us(probe, 0.5) if probe else 0.0,
        "learn_probe_mean_us": sum(probe) / max(len(probe), 1) * 1e6,
        "probes": len(probe),
        "learn_plain_us": sum(plain) / max(len(plain), 1) * 1e6,
        "served_median_us": _us(served, 0.5),
        "served_p99_us": _us(served, 0.99),
        "served_samples": len(served),
        "components_topk": _component_topk(logic, feeder, params.k),
        "rss_growth_bytes": growth,
        "bookkeeping_bytes": bookkeeping,
        "bytes_per_item_seen": (growth - bookkeeping) / max(seen, 1),
        "peak_rss_bytes": rss_bytes("VmHWM:"),
        "snapshot": snapshot,
        "snapshot_bytes_per_item_seen": snapshot["bytes"] / max(seen_final, 1),
        "window_events": events - cut,
        "incremental_bytes_estimate": incremental,
        "cooc_pairs_changed": asdict(pairs),
        "incremental_pairs_bytes_estimate": incremental + by_pair,
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
            f"by co-occurrence pairs ~{_mb(r['incremental_pairs_bytes_estimate'])} MB."
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
