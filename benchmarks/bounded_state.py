"""A million one-visit users through one `tailor run` process with a short state TTL.

Publishes N distinct one-event users, runs the worker in a subprocess with its metrics
endpoint on, samples its RSS and active-users gauge while it works, and prints peak RSS, peak
active users, throughput and how long the gauge took to return to zero after the last event.

    python benchmarks/bounded_state.py [--users 1000000] [--ttl 5] [--items 0]

With `--items N` each visitor views one item of a catalogue of N (round robin), so every
recommender learns every user (without items the models learn nothing).

Starts its own redis-server on a free port (the profiles of a million users need ~1.5 GB).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import orjson
import redis

from tailor.operators.redis.keys import stream_key
from tailor.operators.redis.routing import partition_for

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.throughput import start_server

PREFIX = "million"
PARTITIONS = 4


def scrape(port: int, name: str) -> float:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as reply:
            lines = reply.read().decode().splitlines()
    except OSError:
        return 0.0
    return next((float(line.split()[1]) for line in lines if line.startswith(name + " ")), 0.0)


def rss_mb(pid: int, field: str = "VmRSS:") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1]) / 1024
    return 0.0


def publish(client: redis.Redis, users: int, items: int = 0) -> None:
    pipe = client.pipeline(transaction=False)
    for n in range(users):
        user = f"visitor-{n}"
        event = {"event_id": f"v{n}", "user_id": user, "type": "page_view", "ts": 1_700_000_000 + n}
        if items:
            event.update(type="product_view", item_id=f"item-{n % items}")
        key = stream_key(PREFIX, partition_for(user, PARTITIONS))
        pipe.xadd(key, {"payload": orjson.dumps(event)})
        if n % 10_000 == 9_999:
            pipe.execute()
    pipe.execute()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--ttl", type=float, default=5.0)
    parser.add_argument("--items", type=int, default=0, help="catalogue viewed (0: no items)")
    args = parser.parse_args()
    server, url = start_server()
    port = 9400 + os.getpid() % 500
    try:
        publish(redis.Redis.from_url(url), args.users, args.items)
        env = {
            **os.environ,
            "REDIS_URL": url,
            "TAILOR_REDIS_PREFIX": PREFIX,
            "TAILOR_SOURCE_PARTITIONS": str(PARTITIONS),
            "TAILOR_STATE_TTL_S": str(args.ttl),
            "TAILOR_METRICS_PORT": str(port),
            "TAILOR_RECOVERY_ENABLED": "false",
            "TAILOR_RECOVERY_DIR": tempfile.mkdtemp(),
        }
        worker = subprocess.Popen(
            [sys.executable, "-m", "tailor.flows.cli", "run"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        started, peak_active, accepted = time.perf_counter(), 0.0, 0.0
        while accepted < args.users:
            time.sleep(1)  # sampling the running worker
            kind = "product_view" if args.items else "page_view"
            accepted = scrape(port, f'tailor_events_total{{outcome="accepted",type="{kind}"}}')
            peak_active = max(peak_active, scrape(port, "tailor_active_users"))
        done = time.perf_counter()
        while scrape(port, "tailor_active_users") > 0:
            time.sleep(0.5)
        drained = time.perf_counter()
        print("| users | events/s | peak active | peak RSS MB | RSS after TTL MB | gauge 0 after |")
        print("|---|---|---|---|---|---|")
        print(
            f"| {args.users:,} | {args.users / (done - started):,.0f} | {peak_active:,.0f} | "
            f"{rss_mb(worker.pid, 'VmHWM:'):.0f} | {rss_mb(worker.pid):.0f} | "
            f"{drained - done:.1f} s (TTL {args.ttl:g} s) |"
        )
        worker.terminate()
        worker.wait(timeout=60)
    finally:
        server.terminate()


if __name__ == "__main__":
    main()
