"""`tailor demo`: the first five minutes of a new user.

Starts an embedded Redis when no REDIS_URL is given, publishes the bundled sample to the
event streams, runs a real worker over them while printing progress, and ends with what
came out and where to look. It writes under the prefix "tailor-demo" unless the config
names another, and clears Tailor's keys there first so a second run starts clean; on a Redis
it shares, only a prefix it marked earlier or one it is told to `--reset`
(`tailor.flows.demo_prefix`). The Redis URL it prints never shows the password.
"""

from __future__ import annotations

import shlex
import sys
import threading
from dataclasses import replace
from pathlib import Path

import redis

from tailor.flows.config import Config
from tailor.flows.demo_prefix import claim, glob_escape, prefix_state
from tailor.flows.embedded import DEMO_DIR, EmbeddedRedis
from tailor.flows.produce import produce
from tailor.flows.progress_bar import ProgressBar
from tailor.flows.runner import run_worker, start_metrics
from tailor.flows.sample import write_jsonl
from tailor.flows.segments_table import quality_line, read_rows, render_table
from tailor.operators import metrics
from tailor.operators.redis.keys import deadletter_stream

DEMO_PREFIX = "tailor-demo"


def processed_events() -> int:
    """Events the worker has finished with, whatever the outcome (from its own counters)."""
    return int(
        sum(
            s.value
            for m in metrics.EVENTS.collect()
            for s in m.samples
            if s.name.endswith("_total")
        )
    )


def _watch(total: int, done: threading.Event) -> None:
    """Print the worker's progress from its metrics until the run ends."""
    bar = ProgressBar("processing", total=total)
    while not done.wait(0.5):
        bar.update(processed_events())
    bar.update(processed_events())
    bar.close()


def _latency_quantile(q: float) -> float | None:
    """Upper bucket bound holding quantile q of the event-to-Redis histogram."""
    buckets = [
        (float(s.labels["le"]), s.value)
        for m in metrics.EVENT_TO_REDIS.collect()
        for s in m.samples
        if s.name.endswith("_bucket")
    ]
    total = buckets[-1][1] if buckets else 0
    if not total:
        return None
    return next(bound for bound, count in buckets if count >= q * total)


def _summary(client: redis.Redis, prefix: str, produced: int) -> list[str]:
    pattern = f"{glob_escape(prefix)}:user:*"
    users = sum(1 for _ in client.scan_iter(match=pattern, count=1000))
    p50, p99 = _latency_quantile(0.5), _latency_quantile(0.99)
    lines = [
        f"events published: {produced}, processed: {processed_events()}, "
        f"dead letters: {client.xlen(deadletter_stream(prefix))}",
        f"users with a profile: {users}",
    ]
    if p50 is not None and p99 is not None:
        lines.append(
            f"event-to-Redis latency: p50 ≤ {p50 * 1000:g} ms, p99 ≤ {p99 * 1000:g} ms "
            "(mostly queueing: the whole sample was published before the worker started)"
        )
    quality = quality_line(client, prefix)
    lines.append(f"segments{': ' + quality if quality else ''}")
    lines += [f"  {line}" for line in render_table(read_rows(client, prefix))]
    return lines


def _where_to_look(
    prefix: str, embedded: EmbeddedRedis | None, metrics_url: str | None, live: bool
) -> list[str]:
    """Keys, commands and the metrics URL; redis-cli lines only while the server is up."""
    inspect = "tailor inspect user-00042"
    if not embedded:  # `tailor inspect` reads redis.prefix, which the demo may have replaced
        inspect = f"TAILOR_REDIS_PREFIX={shlex.quote(prefix)} {inspect}"
    lines = [
        "where to look:",
        f"  {inspect}                       (profile and recommendations)",
        f"  keys: {prefix}:user:<id> (hash), {prefix}:recs:<id>, {prefix}:segment:<segment> (set),",
        f"        {prefix}:segments, {prefix}:updates (stream and pub/sub), {prefix}:deadletter",
    ]
    if embedded and not live:
        lines.append(
            f"  the embedded Redis has stopped; its data is kept in {embedded.db_path} "
            "(tailor inspect reads it); `tailor demo --follow` keeps it and the metrics running"
        )
        return lines
    cli = f"redis-cli -s {embedded.socket}" if embedded else "redis-cli -u $REDIS_URL"
    lines += [
        f"  {cli} HGETALL {prefix}:user:user-00042",
        f"  {cli} XREVRANGE {prefix}:updates + - COUNT 5",
    ]
    if metrics_url:
        lines.append(f"  {metrics_url}  (Prometheus)")
    return lines


def run_demo(config: Config, users: int = 1500, follow: bool = False, reset: bool = False) -> int:
    """Publish the sample, run a worker over it, then summarise (or keep running: `follow`).

    Returns 2, having changed nothing, when the prefix on a shared Redis holds keys no
    earlier demo wrote and `reset` is not given.
    """
    prefix = DEMO_PREFIX if config.prefix == "tailor" else config.prefix
    embedded = None if config.redis_url else EmbeddedRedis()
    url = embedded.url if embedded else config.redis_url
    config = replace(
        config,
        redis=replace(config.redis, url=url, prefix=prefix),
        source=replace(config.source, stop_when_drained=not follow),
        # Each demo starts from a cleared prefix and republishes the same sample: resuming an
        # earlier demo's recovery store would skip or refuse all of it.
        recovery=replace(config.recovery, enabled=False),
    )
    try:
        client = redis.Redis.from_url(url)
        found = prefix_state(client, prefix)
        if not (embedded or reset or found.free):  # the embedded server is the demo's own
            print(found.refusal(), file=sys.stderr)
            client.close()
            return 2
        claim(client, prefix)
        produced = _publish(config, DEMO_DIR / "sample-events.jsonl", users)
        metrics_url = start_metrics(config, fallback_to_any_port=True)
        print(
            f"running the worker (Redis: {config.shown_redis_url}, prefix: {prefix}, "
            f"metrics: {metrics_url or 'off'})"
        )
        if follow:
            print("\n".join(_where_to_look(prefix, embedded, metrics_url, live=True)))
            print("the worker keeps running: publish more with `tailor produce`; Ctrl-C stops it")
        _run_with_progress(config, produced)
        summary = _summary(client, prefix, produced)
        print("\n".join(summary + _where_to_look(prefix, embedded, metrics_url, live=False)))
        client.close()
        return 0
    finally:
        if embedded is not None:
            embedded.close()


def _publish(config: Config, sample: Path, users: int) -> int:
    count = write_jsonl(sample, users=users)
    print(f"generated {count} sample events from {users} users in {sample}")
    partitions = config.source.partitions
    return produce(config.redis_url, sample, config.prefix, partitions, workers=config.workers)


def _run_with_progress(config: Config, total: int) -> None:
    done = threading.Event()
    watcher = threading.Thread(target=_watch, args=(total, done), daemon=True)
    watcher.start()
    try:
        run_worker(config)
    finally:
        done.set()
        watcher.join()
