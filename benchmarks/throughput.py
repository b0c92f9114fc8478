"""Throughput and latency of one worker process against a real Redis.

Two runs, on MovieLens latest-small ratings or the demo's shop sample (cycled to N events with
fresh ids and shifted times) and with every model on:

1. backlog: N events pre-loaded into the streams, the worker drains them; events/s.
2. paced: a producer process feeds the streams at a fixed rate (150,000 events: 30 s at
   5,000/s, so a tail holds several model snapshots) while the worker runs; event-to-Redis
   latency percentiles (from the worker's own histogram) at that rate. Twice: with fresh
   models, and after `--warmup` events drained unpaced first. A fresh hybrid tests every
   list at each of its first 5,000 interactions (`hybrid_warm_probes`), ~1 ms each, so a fresh
   worker's first seconds queue; a worker that has run a while (or resumed from recovery)
   does not pay that again, and the second row is its steady state.

    python benchmarks/throughput.py [--events 200000] [--data movielens|sample] [--rate 5000]
                                    [--paced-events 150000] [--warmup 10000] [--model NAME]
                                    [--recovery] [--redis-url URL]

Without --recovery the flow runs without a recovery store (Bytewax still snapshots every
stateful step at each epoch end); with it, as `tailor run` does by default, the snapshots are
also written to a fresh store in a temporary directory every `recovery.snapshot_interval_s`.

The cycles reach decades past today, so `validation.max_future_s` is raised until no event
is ahead of the clock (as `benchmarks/scale.py` does): with the default, the later cycles would
be dead-lettered as `ts_future`, far cheaper than accepted events. The backlog's events/s counts
accepted events only (those that reach the models and Redis); the dead-letter column should be 0.

Without --redis-url a throw-away redis-server is started on a free port.
"""

from __future__ import annotations

import argparse
import csv
import multiprocessing
import multiprocessing.synchronize
import os
import resource
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import redis
from bytewax.testing import run_main

from tailor.flows.config import Config, load_config
from tailor.flows.demo import processed_events
from tailor.flows.recovery import recovery_settings
from tailor.flows.runner import tune_gc
from tailor.flows.sample import generate
from tailor.flows.worker import build_redis_flow
from tailor.operators import lifecycle, metrics
from tailor.operators.redis.keys import stream_key
from tailor.operators.redis.routing import partition_for

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "movielens-latest-small"
PREFIX = "bench"


def movielens_rows() -> list[dict[str, Any]]:
    """MovieLens ratings as product views in time order (a few users active at a time)."""
    with (DATA / "ratings.csv").open() as handle:
        rows = sorted(
            (int(r["timestamp"]), r["userId"], r["movieId"]) for r in csv.DictReader(handle)
        )
    devices = ("mobile", "desktop", "tablet")
    return [
        {
            "event_id": f"{u}-{m}-{ts}",
            "user_id": u,
            "type": "product_view",
            "ts": ts,
            "item_id": m,
            "device": devices[int(u) % 3],
        }
        for ts, u, m in rows
    ]


def sample_rows() -> list[dict[str, Any]]:
    """The demo's shop clickstream: 1,500 users interleaved, so most events change a new user."""
    return list(generate(users=1500, seed=7))


def cycled(rows: list[dict[str, Any]], n: int) -> Iterator[bytes]:
    """`n` events: the rows again and again, each cycle with new ids and later times."""
    span = rows[-1]["ts"] - rows[0]["ts"] + 86400
    produced, cycle = 0, 0
    while True:
        for row in rows:
            if produced == n:
                return
            event = {
                **row,
                "event_id": f"{cycle}-{row['event_id']}",
                "ts": row["ts"] + cycle * span,
            }
            yield orjson.dumps(event)
            produced += 1
        cycle += 1


def accepted_events() -> int:
    """Events the worker accepted (they reached the models and Redis), from its counters."""
    return int(
        sum(
            s.value
            for m in metrics.EVENTS.collect()
            for s in m.samples
            if s.name.endswith("_total") and s.labels["outcome"] == "accepted"
        )
    )


def max_future_s(payloads: list[bytes]) -> float:
    """A `validation.max_future_s` that refuses none of `payloads` as ahead of the clock."""
    newest = max(float(orjson.loads(p)["ts"]) for p in payloads[-1000:])
    return max(86400.0, newest - time.time() + 86400.0)


def publish(client: redis.Redis, payloads: list[bytes], partitions: int) -> None:
    pipe = client.pipeline(transaction=False)
    for payload in payloads:
        user = orjson.loads(payload)["user_id"]
        pipe.xadd(stream_key(PREFIX, partition_for(user, partitions)), {b"payload": payload})
    pipe.execute()


def start_server() -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    binary = shutil.which("redis-server") or "redis-server"
    workdir = tempfile.mkdtemp()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--save", "", "--appendonly", "no", "--dir", workdir],
        stdout=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)
    for _ in range(200):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    return proc, f"redis://127.0.0.1:{port}/0"


def latency_buckets() -> list[tuple[float, float]]:
    """(upper bound, cumulative count) of the event-to-Redis histogram now."""
    return [
        (float(s.labels["le"]), s.value)
        for m in metrics.EVENT_TO_REDIS.collect()
        for s in m.samples
        if s.name.endswith("_bucket")
    ]


def latency_quantile(q: float, since: list[tuple[float, float]] | None = None) -> float:
    """Quantile of event-to-Redis latency, linearly interpolated inside its histogram bucket;
    over the observations made after the bucket counts `since`, when given."""
    samples = latency_buckets()
    if since is not None:
        samples = [(b, c - c0) for (b, c), (_, c0) in zip(samples, since, strict=True)]
    total = samples[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in samples:
        if count >= q * total:
            if bound == float("inf"):
                return lower_bound
            share = (q * total - lower_count) / max(count - lower_count, 1)
            return lower_bound + share * (bound - lower_bound)
        lower_bound, lower_count = bound, count
    return lower_bound


def reset_histogram() -> None:
    metrics.EVENT_TO_REDIS._metric_init()  # type: ignore[attr-defined]


def rss_mb() -> float:
    with open(f"/proc/{os.getpid()}/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def run_flow(config: Config) -> None:
    """One worker over the streams, as `tailor run` would run it: with a recovery store
    (a fresh one in a temporary directory) when `recovery.enabled`, else none."""
    flow = build_redis_flow(config)
    if not config.recovery.enabled:
        run_main(flow)
        return
    with tempfile.TemporaryDirectory() as scratch:
        recovery = recovery_settings(config.with_value("recovery", "dir", scratch))
        assert recovery is not None
        run_main(flow, **recovery.run_arguments())


def backlog_run(config: Config, client: redis.Redis, payloads: list[bytes]) -> dict[str, float]:
    n = len(payloads)
    for start in range(0, n, 10_000):
        publish(client, payloads[start : start + 10_000], config.source.partitions)
    rss_before = rss_mb()
    before, accepted_before = processed_events(), accepted_events()
    tune_gc()
    started = time.perf_counter()
    run_flow(config.with_value("source", "stop_when_drained", True))
    elapsed = time.perf_counter() - started
    users = metrics.ACTIVE_USERS._value.get()  # type: ignore[attr-defined]
    accepted = accepted_events() - accepted_before
    return {
        "events": accepted,
        "refused": processed_events() - before - accepted,
        "seconds": elapsed,
        "events_per_s": accepted / elapsed,
        "p50_ms": latency_quantile(0.5) * 1000,
        "p95_ms": latency_quantile(0.95) * 1000,
        "p99_ms": latency_quantile(0.99) * 1000,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_kb_per_user": (rss_mb() - rss_before) * 1024 / max(users, 1),
        "active_users": users,
    }


def produce(
    url: str,
    payloads: list[bytes],
    warmup: int,
    rate: float,
    partitions: int,
    go: multiprocessing.synchronize.Event,
) -> None:
    """The producer, in its own process as in a deployment (in the worker's process it took
    ~15% of the GIL): the first `warmup` events at once, then, once `go` is set, the rest at
    `rate`, 20 sends per second."""
    client = redis.Redis.from_url(url)
    for start in range(0, warmup, 10_000):
        publish(client, payloads[start : min(start + 10_000, warmup)], partitions)
    go.wait()
    chunk = max(int(rate / 20), 1)
    started = time.perf_counter()
    for i, start in enumerate(range(warmup, len(payloads), chunk)):
        delay = started + i / 20 - time.perf_counter()
        if delay > 0:
            time.sleep(delay)  # pacing the producer, not synchronising a test
        publish(client, payloads[start : start + chunk], partitions)


def paced_run(
    config: Config, client: redis.Redis, payloads: list[bytes], rate: float, warmup: int = 0
) -> dict[str, float]:
    """Latency at `rate`, over the events after the first `warmup`, which are published at
    once and drained before pacing starts (their latency is queueing, not counted)."""
    n = len(payloads)
    client.flushall()
    reset_histogram()
    before = processed_events()
    since: list[list[tuple[float, float]]] = []
    fork = multiprocessing.get_context("fork")  # before the flow starts: no threads to copy
    go = fork.Event()
    producer = fork.Process(
        target=produce,
        args=(config.redis_url, payloads, warmup, rate, config.source.partitions, go),
    )

    def watch() -> None:
        while latency_buckets()[-1][1] < warmup:  # every warm-up event written to Redis
            time.sleep(0.05)  # waiting for the worker to drain, not synchronising a test
        since.append(latency_buckets())
        go.set()
        producer.join()
        while processed_events() - before < n:
            time.sleep(0.05)
        lifecycle.request_stop()

    lifecycle.reset()
    producer.start()
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    run_flow(config.with_value("source", "stop_when_drained", False))
    watcher.join()
    lifecycle.reset()
    return {
        "rate": rate,
        "warmup": warmup,
        **{f"p{q}_ms": latency_quantile(q / 100, since[0]) * 1000 for q in (50, 95, 99)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rate", type=float, default=5000.0)
    parser.add_argument("--paced-events", type=int, default=150_000)
    parser.add_argument("--warmup", type=int, default=10_000, help="events before pacing")
    parser.add_argument("--redis-url")
    parser.add_argument("--data", choices=("movielens", "sample"), default="movielens")
    parser.add_argument("--model", default="hybrid", help="the recommender every user is served")
    parser.add_argument(
        "--recovery", action="store_true", help="snapshot to a recovery store, as `tailor run`"
    )
    args = parser.parse_args()
    server, url = (None, args.redis_url) if args.redis_url else start_server()
    config = load_config(env={}).with_value("redis", "url", url)
    config = config.with_value("redis", "prefix", PREFIX).with_value("metrics", "port", 0)
    config = config.with_value("recs", "variant_models", {"all": args.model})
    config = config.with_value("recovery", "enabled", args.recovery)
    client = redis.Redis.from_url(url)
    try:
        rows = movielens_rows() if args.data == "movielens" else sample_rows()
        payloads = list(cycled(rows, max(args.events, args.warmup + args.paced_events)))
        config = config.with_value("validation", "max_future_s", max_future_s(payloads))
        backlog = backlog_run(config, client, payloads[: args.events])
        paced = [
            paced_run(config, client, payloads[: warmup + args.paced_events], args.rate, warmup)
            for warmup in (0, args.warmup)
        ]
    finally:
        if server is not None:
            server.terminate()
    print(
        "| run | events | refused | events/s | p50 ms | p95 ms | p99 ms | peak RSS MB "
        "| RSS KB/user |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    print(
        f"| backlog | {backlog['events']:.0f} | {backlog['refused']:.0f} | "
        f"{backlog['events_per_s']:,.0f} | "
        f"{backlog['p50_ms']:.1f} | {backlog['p95_ms']:.1f} | {backlog['p99_ms']:.1f} | "
        f"{backlog['peak_rss_mb']:.0f} | {backlog['rss_kb_per_user']:.1f} |"
    )
    for run in paced:
        label = f"after {run['warmup']:,.0f} events" if run["warmup"] else "fresh models"
        print(
            f"| paced {run['rate']:.0f}/s, {label} | {args.paced_events} | - | - | "
            f"{run['p50_ms']:.1f} | {run['p95_ms']:.1f} | {run['p99_ms']:.1f} | - | - |"
        )


if __name__ == "__main__":
    main()
