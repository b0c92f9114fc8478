"""`tailor serve` under load: requests/s, and p50/p99 at a fixed rate (2,000 requests/s).

A real `tailor serve` process (the CLI, uvicorn, one process) against its own redis-server
filled with `--users` users' lists of 10 items and the trending and popular fallback lists.
Two load tools, each in its own process:

* the latency at `--rate`: `benchmarks/serve_load.py`, an open-loop generator (requests leave
  on schedule whatever the server does; latency runs from when a request was due), with
  `--unknown` of the ids belonging to nobody (served the trending list);
* the most requests/s: wrk, closed loop, 32 connections.

Baseline in the same run: the bare ASGI prototype (`benchmarks/prototypes/serve_stacks.py`,
``raw``: one GET, no framework, no metrics) on uvicorn against the same Redis, measured in
turn with `tailor serve` each round, so the two see the same machine.

    flock /work/wt/measure.lock python benchmarks/serve.py [--users 100000] [--rounds 3]

The machine is shared: each run starts once other work keeps fewer than `--max-busy` cores
busy (waiting at most `--max-wait` s), and a run during which other work took more (the
machine's busy time less the server's, Redis's and the generator's) is tried again, up to
`--attempts` times. Prints one JSON line per run, then a Markdown table of the medians over
the undisturbed runs.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.hostile_payloads import start_server  # noqa: E402
from benchmarks.prototypes.serve_stacks import start_stack  # noqa: E402
from benchmarks.serve_measure import (  # noqa: E402
    PREFIX,
    fill,
    free_port,
    machine_busy_s,
    open_loop,
    tree_cpu_s,
    wait_http,
    wait_quiet,
    wrk_max,
)

SERVERS = ("tailor serve", "raw ASGI floor")


def start_tailor_serve(redis_url: str, port: int) -> subprocess.Popen[bytes]:
    """The real command, as a user starts it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAILOR_")}
    env.update(REDIS_URL=redis_url, TAILOR_REDIS_PREFIX=PREFIX, TAILOR_METRICS_PORT="0")
    argv = [sys.executable, "-m", "tailor.flows.cli", "serve", "--port", str(port)]
    proc = subprocess.Popen(argv, env=env, cwd=ROOT, stderr=subprocess.DEVNULL)
    wait_http(port)
    return proc


def others_cores(before: tuple[float, ...], after: tuple[float, ...], seconds: float) -> float:
    """Cores other work kept busy meanwhile: the machine's busy time less the server's, Redis's
    and the load generator's (`usage`)."""
    machine, *ours = (b - a for a, b in zip(before, after, strict=True))
    return round(max(0.0, machine - sum(ours)) / seconds, 2)


def usage(server_pid: int, redis_pid: int) -> tuple[float, ...]:
    """Machine busy seconds, then the server's, Redis's and finished children's (the load
    generator's) CPU seconds."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (
        machine_busy_s(),
        tree_cpu_s(server_pid),
        tree_cpu_s(redis_pid),
        children.ru_utime + children.ru_stime,
    )


def measure(
    server: str, redis_url: str, redis_pid: int, args: argparse.Namespace
) -> dict[str, Any]:
    others = wait_quiet(args.max_busy, args.max_wait)
    port = free_port()
    if server == "tailor serve":
        proc = start_tailor_serve(redis_url, port)
    else:
        proc = start_stack("raw", redis_url, port)
    try:
        open_loop(port, args.users, args.rate, 3.0, args.unknown)  # warm-up
        before, start = usage(proc.pid, redis_pid), time.monotonic()
        loaded = open_loop(port, args.users, args.rate, args.seconds, args.unknown)
        after, elapsed = usage(proc.pid, redis_pid), time.monotonic() - start
        cpu_us = (after[1] - before[1]) / max(1, loaded["requests"]) * 1e6
        most = wrk_max(port, args.users, min(args.seconds, 10.0))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    keys = ("achieved_rps", "p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms")
    return {
        "server": server,
        **{k: loaded[k] for k in keys},
        "send_lag_p99_ms": loaded["send_lag_p99_ms"],
        "non_200": sum(v for k, v in loaded["statuses"].items() if k != "200") + loaded["errors"],
        "cpu_us_per_request": round(cpu_us, 1),
        **most,
        "others_busy_cores": others,
        "others_busy_cores_during": others_cores(before, after, elapsed),
    }


def table(results: list[dict[str, Any]], rate: float) -> str:
    """Medians over the rounds, one row per server."""
    rows = [
        f"| server | p50 at {rate:,.0f}/s (ms) | p99 (ms) | p99.9 (ms) | CPU µs per request | "
        "most requests/s (wrk) | cores other work kept busy (before / during) |",
        "|---|---|---|---|---|---|---|",
    ]
    for server in SERVERS:
        mine = [r for r in results if r["server"] == server]
        if not mine:
            continue

        def med(key: str, runs: list[dict[str, Any]] = mine) -> float:
            return statistics.median(r[key] for r in runs)

        rows.append(
            f"| {server} | {med('p50_ms'):.2f} | {med('p99_ms'):.2f} | {med('p999_ms'):.2f} | "
            f"{med('cpu_us_per_request'):.0f} | {med('wrk_rps'):,.0f} | "
            f"{med('others_busy_cores'):.2f} / {med('others_busy_cores_during'):.2f} |"
        )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=2000.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--unknown", type=float, default=0.1, help="share of unknown ids")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", choices=SERVERS, help="measure one server")
    parser.add_argument("--max-busy", type=float, default=0.5, help="cores others may use")
    parser.add_argument("--max-wait", type=float, default=120.0, help="seconds to wait for that")
    parser.add_argument("--attempts", type=int, default=3, help="tries of a disturbed run")
    args = parser.parse_args()
    redis_proc, client = start_server()
    redis_url = f"redis://127.0.0.1:{client.connection_pool.connection_kwargs['port']}/0"
    results: list[dict[str, Any]] = []
    try:
        fill(client, args.users)
        for round_ in range(args.rounds):
            for server in [args.only] if args.only else SERVERS:
                results.append(undisturbed(server, redis_url, redis_proc.pid, round_, args))
    finally:
        redis_proc.terminate()
        redis_proc.wait(timeout=30)
    kept = [r for r in results if r["others_busy_cores_during"] <= args.max_busy]
    print(f"{len(kept)} of {len(results)} runs undisturbed (other work <= {args.max_busy} cores)")
    print(table(kept or results, args.rate))


def undisturbed(
    server: str, redis_url: str, redis_pid: int, round_: int, args: argparse.Namespace
) -> dict[str, Any]:
    """A run during which other work kept at most `--max-busy` cores busy, tried up to
    `--attempts` times (the last one is kept either way, and says how busy it was)."""
    for attempt in range(args.attempts):
        result = {
            "round": round_,
            "attempt": attempt,
            **measure(server, redis_url, redis_pid, args),
        }
        print(orjson.dumps(result).decode(), flush=True)
        if result["others_busy_cores_during"] <= args.max_busy:
            break
    return result


if __name__ == "__main__":
    main()
