"""Oversized payloads in one partition: the worker's peak RSS and the dead letters' size.

Publishes `--big` entries of `--mb` MB each (valid JSON events, only too large) into one stream
partition, then `--good` ordinary events behind them, on a redis-server it starts on a free
port; runs the real worker (`tailor run --until-drained`, from the checkout this file sits in)
in a subprocess and prints its peak RSS, the largest dead letter, the first five letters'
total, and how many events were accepted and dead-lettered.

    python benchmarks/hostile_payloads.py [--big 100] [--mb 5] [--good 100]

Copy this file into another checkout to measure that checkout's worker the same way.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
import redis

PREFIX = "hostile"
ROOT = Path(__file__).resolve().parents[1]


def redis_server_binary() -> str:
    """The machine's redis-server (Redis 7), not the older one a virtualenv may put first."""
    entries = os.environ.get("PATH", "").split(os.pathsep)
    path = os.pathsep.join(p for p in entries if p and not (Path(p).parent / "pyvenv.cfg").exists())
    return shutil.which("redis-server", path=path) or "redis-server"


def start_server() -> tuple[subprocess.Popen[bytes], redis.Redis]:
    """A throw-away redis-server on a port the OS picks free for us."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    args = [redis_server_binary(), "--port", str(port), "--save", "", "--appendonly", "no"]
    proc = subprocess.Popen([*args, "--dir", tempfile.mkdtemp()], stdout=subprocess.DEVNULL)
    client = redis.Redis(port=port)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            return proc, client
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)  # waiting for the server to accept connections


def event(n: int, pad: int = 0) -> bytes:
    body = {"event_id": f"e{n}", "user_id": f"user-{n % 50}", "type": "click", "ts": 1_700_000_000}
    if pad:
        body["pad"] = "a" * pad
    return orjson.dumps(body)


def publish(client: redis.Redis, big: int, size: int, good: int) -> None:
    """Everything into partition 0 (one partition runs), big payloads first."""
    key = f"{PREFIX}:events:0"
    for n in range(big):
        client.xadd(key, {"payload": event(n, size)})
    for n in range(big, big + good):
        client.xadd(key, {"payload": event(n)})


def letter_sizes(client: redis.Redis) -> list[int]:
    """Bytes of each dead letter's fields, oldest first, read one letter at a time."""
    sizes, after = [], "-"
    while True:
        chunk = client.xrange(f"{PREFIX}:deadletter", after, "+", count=1)
        if not chunk:
            return sizes
        entry_id, fields = chunk[0]
        sizes.append(sum(len(k) + len(v) for k, v in fields.items()))
        after = "(" + entry_id.decode()


def run_worker(url: str) -> tuple[float, float, int]:
    """(peak RSS MB, seconds, exit code) of one `tailor run --until-drained`."""
    env = {
        **os.environ,
        "REDIS_URL": url,
        "TAILOR_REDIS_PREFIX": PREFIX,
        "TAILOR_SOURCE_PARTITIONS": "1",
        "TAILOR_METRICS_PORT": "0",
        "TAILOR_RECOVERY_ENABLED": "false",
        "TAILOR_RECOVERY_DIR": tempfile.mkdtemp(),
        "PYTHONPATH": str(ROOT),
    }
    started = time.perf_counter()
    worker = subprocess.run(
        [sys.executable, "-m", "tailor.flows.cli", "run", "--until-drained"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
    )
    elapsed = time.perf_counter() - started
    # The only child waited for so far: its peak is the worker's (kilobytes on Linux).
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return peak_mb, elapsed, worker.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--big", type=int, default=100, help="oversized entries")
    parser.add_argument("--mb", type=float, default=5.0, help="size of each, in MB")
    parser.add_argument("--good", type=int, default=100, help="ordinary events behind them")
    args = parser.parse_args()
    server, client = start_server()
    try:
        publish(client, args.big, int(args.mb * 1_000_000), args.good)
        before = int(client.info("memory")["used_memory"])
        peak_mb, elapsed, code = run_worker(
            f"redis://127.0.0.1:{client.connection_pool.connection_kwargs['port']}/0"
        )
        sizes = letter_sizes(client)
        after = int(client.info("memory")["used_memory"])
        accepted = sum(
            int(client.hget(key, "version") or 0)
            for key in client.scan_iter(match=f"{PREFIX}:user:*")
        )
        print(f"checkout: {ROOT} (exit code {code}, {elapsed:.1f} s)")
        print(
            "| entries | worker peak RSS MB | dead letters | largest letter | first five | "
            "events accepted | Redis growth MB |"
        )
        print("|---|---|---|---|---|---|---|")
        print(
            f"| {args.big} x {args.mb:g} MB + {args.good} | {peak_mb:.0f} | {len(sizes)} | "
            f"{max(sizes, default=0):,} B | {sum(sizes[:5]):,} B | {accepted} | "
            f"{(after - before) / 1e6:.0f} |"
        )
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
