"""Scale-out: one backlog drained by 1 and 2 (or 4) `tailor run` processes, and the bare I/O.

In one run, on a redis-server it starts on a free port:

1. publishes MovieLens latest-small cycled `--cycles` times as new users (302,508 events by
   default; `benchmarks/scale_io.py`) with `tailor produce`'s own code, and keeps a copy;
2. the bare I/O path of the same shape (XREAD COUNT 1000 per partition + orjson + one pipelined
   HSET/SET/PUBLISH per changed user per batch, no models) with 1 and 2 processes;
3. for each process count: the real worker, `tailor run --until-drained`, default config,
   recovery off, 2+ processes in Bytewax cluster mode (`cluster.addresses`, `process_id`),
   once on empty streams (start-up and shut-down alone) and once on the restored backlog;
4. the bare I/O path again, and the table (or `--json`).

Timing. `wall` is from spawning the processes to the last one's exit: what a user waits.
`start-up` is from spawning to the first change notice in `<prefix>:updates` (the stream's
entry ids are Redis's clock), `processing` from the first notice to the last one; the
processing rate excludes start-up and shut-down. The empty run measures start-up plus
shut-down with nothing to read. Peak RSS (VmHWM) and CPU seconds are each process's own.

One validation setting differs from the defaults: the cycles span 67 years, so
`validation.max_future_s` is raised until no event is ahead of the clock (with the default,
later cycles would be dead-lettered as `ts_future`: cheap, and not what is measured). The
table shows dead letters per run; they should be 0.

    flock /work/wt/measure.lock python benchmarks/scale.py [--events N] [--cycles 3]
        [--processes 1,2] [--skip-bare] [--compare] [--json]

`--compare` reads every `<prefix>:user:<id>` after each worker run and counts the users whose
`features`, `segment`, `rfm_segment` or `rule_segments` differ from the 1-process run (and,
for information, whose recommendations differ).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson
import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.scale_io import (
    Backlog,
    bare_run,
    cycled,
    movielens_events,
    newest_ts,
    peak_rss_mb,
    publish_backlog,
)
from benchmarks.throughput import start_server
from flows.config import load_config
from operators.keys import deadletter_stream, recs_key, updates_stream

PREFIX = "tailor"
PROFILE_FIELDS = ("features", "segment", "rfm_segment", "rule_segments")
#: One user's compared fields, and their recommendations (compared for information only).
Profile = tuple[tuple[bytes | None, ...], bytes | None]


@dataclass
class WorkerRun:
    processes: int
    events: int
    wall_s: float
    startup_s: float
    processing_s: float
    empty_run_s: float
    exit_s: list[float]
    peak_rss_mb: list[float]
    cpu_s: list[float]
    redis_cpu_s: float
    users: int
    dead_letters: int
    profiles: dict[str, Profile] = field(default_factory=dict, repr=False)

    @property
    def events_per_s(self) -> float:
        return self.events / self.wall_s

    @property
    def processing_events_per_s(self) -> float:
        return self.events / self.processing_s if self.processing_s > 0 else 0.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def worker_env(url: str, max_future_s: float, addresses: list[str], process_id: int) -> dict:
    """Defaults except: this Redis, recovery off, no metrics port, the validation bound."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAILOR_")}
    env.update(
        REDIS_URL=url,
        TAILOR_RECOVERY_ENABLED="false",
        TAILOR_METRICS_PORT="0",
        TAILOR_VALIDATION_MAX_FUTURE_S=repr(max_future_s),
    )
    if addresses:
        env["TAILOR_CLUSTER_ADDRESSES"] = orjson.dumps(addresses).decode()
        env["TAILOR_CLUSTER_PROCESS_ID"] = str(process_id)
    return env


def spawn(url: str, max_future_s: float, processes: int, logs: Path) -> list[subprocess.Popen]:
    """One `tailor run --until-drained` per process; a cluster when more than one."""
    tailor = shutil.which("tailor") or str(Path(sys.executable).with_name("tailor"))
    addresses = [f"127.0.0.1:{free_port()}" for _ in range(processes)] if processes > 1 else []
    procs = []
    for pid in range(processes):
        log = (logs / f"worker-{processes}-{pid}.log").open("wb")
        procs.append(
            subprocess.Popen(
                [tailor, "run", "--until-drained"],
                env=worker_env(url, max_future_s, addresses, pid),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
    return procs


def first_notice_s(client: redis.Redis) -> float | None:
    """Redis's time of the oldest change notice still in the stream (epoch seconds)."""
    entries: Any = client.xrange(updates_stream(PREFIX), count=1)
    return int(entries[0][0].split(b"-")[0]) / 1000 if entries else None


def last_notice_s(client: redis.Redis) -> float | None:
    entries: Any = client.xrevrange(updates_stream(PREFIX), count=1)
    return int(entries[0][0].split(b"-")[0]) / 1000 if entries else None


def reap(procs: list[subprocess.Popen], client: redis.Redis, logs: Path) -> dict[str, Any]:
    """Wait for every process (exit time, CPU from wait4), noting the first notice and each
    process's peak RSS (polled every 10 ms: VmHWM only grows, so the last poll is close)."""
    pending = {p.pid: i for i, p in enumerate(procs)}
    exits, rss, cpu = [0.0] * len(procs), [0.0] * len(procs), [0.0] * len(procs)
    first = None
    while pending:
        for pid, i in list(pending.items()):
            rss[i] = max(rss[i], peak_rss_mb(pid))
            done, status, usage = os.wait4(pid, os.WNOHANG)
            if not done:
                continue
            exits[i] = time.time()
            cpu[i] = usage.ru_utime + usage.ru_stime
            procs[i].returncode = os.waitstatus_to_exitcode(status)
            del pending[pid]
            if procs[i].returncode != 0:
                for p in procs:
                    if p.returncode is None:
                        p.kill()
                raise RuntimeError(f"worker {i} exited {procs[i].returncode}; logs in {logs}")
        if first is None:
            first = first_notice_s(client)
        time.sleep(0.01)  # polling the child processes and Redis, not synchronising
    return {"exits": exits, "rss": rss, "cpu": cpu, "first": first or first_notice_s(client)}


def redis_cpu_s(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def read_profiles(client: redis.Redis) -> dict[str, Profile]:
    """Every user's compared profile fields and recommendations."""
    users = [k.decode() for k in client.scan_iter(f"{PREFIX}:user:*", count=1000)]
    pipe = client.pipeline(transaction=False)
    for key in users:
        pipe.hmget(key, list(PROFILE_FIELDS))
        pipe.get(recs_key(PREFIX, key.split(":", 2)[2]))
    replies = pipe.execute()
    return {
        key.split(":", 2)[2]: (tuple(replies[2 * i]), replies[2 * i + 1])
        for i, key in enumerate(users)
    }


def timed_workers(
    url: str, backlog: Backlog, processes: int, max_future_s: float, logs: Path, keep: bool
) -> WorkerRun:
    """An empty run (start-up and shut-down alone), then the backlog from a fresh restore."""
    client = redis.Redis.from_url(url)
    backlog.clear()
    started = time.time()
    reap(spawn(url, max_future_s, processes, logs), client, logs)
    empty_run_s = time.time() - started
    events = backlog.restore()
    cpu_before = redis_cpu_s(client)
    started = time.time()
    waited = reap(spawn(url, max_future_s, processes, logs), client, logs)
    last = last_notice_s(client) or max(waited["exits"])
    first = waited["first"] or started
    return WorkerRun(
        processes=processes,
        events=events,
        wall_s=max(waited["exits"]) - started,
        startup_s=first - started,
        processing_s=last - first,
        empty_run_s=empty_run_s,
        exit_s=[round(t - started, 2) for t in waited["exits"]],
        peak_rss_mb=[round(r) for r in waited["rss"]],
        cpu_s=[round(c, 1) for c in waited["cpu"]],
        redis_cpu_s=round(redis_cpu_s(client) - cpu_before, 1),
        users=sum(1 for _ in client.scan_iter(f"{PREFIX}:user:*", count=1000)),
        dead_letters=int(client.xlen(deadletter_stream(PREFIX))),
        profiles=read_profiles(client) if keep else {},
    )


def compare(base: dict[str, Profile], other: dict[str, Profile]) -> dict[str, int]:
    """How many users differ, per compared field, and in their recommendations."""
    users = set(base) | set(other)
    missing = sum(1 for u in users if u not in base or u not in other)
    both = [u for u in users if u in base and u in other]
    per_field = {
        name: sum(1 for u in both if base[u][0][i] != other[u][0][i])
        for i, name in enumerate(PROFILE_FIELDS)
    }
    return {
        "users": len(users),
        "missing": missing,
        "profiles_differ": sum(1 for u in both if base[u][0] != other[u][0]),
        **per_field,
        "recs_differ": sum(1 for u in both if base[u][1] != other[u][1]),
        "rec_items_differ": sum(1 for u in both if rec_items(base[u][1]) != rec_items(other[u][1])),
    }


def rec_items(recs: bytes | None) -> list[Any]:
    """The recommended item ids, best first (scores and sources aside)."""
    return [item["item_id"] for item in orjson.loads(recs)["items"]] if recs else []


def table(bare: list[dict[str, Any]], runs: list[WorkerRun]) -> str:
    lines = [
        "| run | events | wall s | events/s | start-up s | events/s after start-up | "
        "empty run s | peak RSS MB | CPU s | Redis CPU s | users | dead letters |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for b in bare:
        lines.append(
            f"| bare I/O {b['when']}, {b['processes']} proc | {b['events']:,} | "
            f"{b['seconds']:.2f} | {b['events_per_s']:,.0f} | - | - | - | "
            f"{' / '.join(map(str, b['peak_rss_mb']))} | {' / '.join(map(str, b['cpu_s']))} "
            "| - | - | - |"
        )
    for r in runs:
        lines.append(
            f"| worker, {r.processes} proc | {r.events:,} | {r.wall_s:.1f} | "
            f"{r.events_per_s:,.0f} | {r.startup_s:.1f} | {r.processing_events_per_s:,.0f} | "
            f"{r.empty_run_s:.1f} | {' / '.join(map(str, r.peak_rss_mb))} | "
            f"{' / '.join(map(str, r.cpu_s))} | {r.redis_cpu_s} | {r.users:,} | "
            f"{r.dead_letters} |"
        )
    return "\n".join(lines)


def ratios(bare: list[dict[str, Any]], runs: list[WorkerRun]) -> dict[str, float]:
    """2 proc / 1 proc (target >= 1.6) and 1 proc / bare I/O 1 proc (target >= 0.06)."""
    by_n = {r.processes: r for r in runs}
    out: dict[str, float] = {}
    one = by_n.get(1)
    for n, run in sorted(by_n.items()):
        if one is not None and n != 1:
            out[f"{n} proc / 1 proc"] = run.events_per_s / one.events_per_s
            out[f"{n} proc / 1 proc, after start-up"] = (
                run.processing_events_per_s / one.processing_events_per_s
            )
    bare_one = [b["events_per_s"] for b in bare if b["processes"] == 1]
    if one is not None and bare_one:
        out["1 proc / bare I/O 1 proc"] = one.events_per_s / (sum(bare_one) / len(bare_one))
    return out


def bare_both(url: str, keys: list[str], when: str) -> list[dict[str, Any]]:
    return [{"when": when, **bare_run(url, keys, n)} for n in (1, 2)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, help="first N events of the cycles (default all)")
    parser.add_argument("--cycles", type=int, default=3, help="copies of MovieLens, new users")
    parser.add_argument("--processes", default="1,2", help="worker process counts, e.g. 1,2,4")
    parser.add_argument("--skip-bare", action="store_true", help="no bare I/O runs")
    parser.add_argument("--compare", action="store_true", help="compare profiles across runs")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    args = parser.parse_args()
    counts = [int(n) for n in args.processes.split(",")]
    partitions = int(load_config(env={})["source"]["partitions"])
    events = movielens_events()
    cycles = max(args.cycles, -(-(args.events or 0) // len(events)))
    payloads = list(cycled(events, cycles, args.events))
    max_future_s = max(86400.0, newest_ts(payloads) - time.time() + 86400.0)
    server, url = start_server()
    logs = Path(tempfile.mkdtemp(prefix="scale-logs-"))
    try:
        publish_backlog(url, PREFIX, partitions, payloads)
        backlog = Backlog(url, PREFIX, partitions)
        assert backlog.save() == len(payloads)
        bare = [] if args.skip_bare else bare_both(url, backlog.keys, "before")
        runs = [timed_workers(url, backlog, n, max_future_s, logs, args.compare) for n in counts]
        if not args.skip_bare:
            backlog.restore()
            bare += bare_both(url, backlog.keys, "after")
    finally:
        server.terminate()
    compared = {
        f"{r.processes} proc vs 1 proc": compare(runs[0].profiles, r.profiles)
        for r in runs[1:]
        if args.compare and runs[0].processes == 1
    }
    report(args.json, len(payloads), partitions, max_future_s, bare, runs, compared)
    shutil.rmtree(logs, ignore_errors=True)


def report(
    as_json: bool,
    events: int,
    partitions: int,
    max_future_s: float,
    bare: list[dict[str, Any]],
    runs: list[WorkerRun],
    compared: dict[str, dict[str, int]],
) -> None:
    result: dict[str, Any] = {
        "events": events,
        "partitions": partitions,
        "max_future_s": max_future_s,
        "bare": bare,
        "workers": [
            {
                **{k: v for k, v in asdict(r).items() if k != "profiles"},
                "events_per_s": r.events_per_s,
                "processing_events_per_s": r.processing_events_per_s,
            }
            for r in runs
        ],
        "ratios": ratios(bare, runs),
        "compare": compared,
    }
    if as_json:
        print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
        return
    print(f"{events:,} events, {partitions} partitions, nproc {os.cpu_count()}")
    print(table(bare, runs))
    for name, value in result["ratios"].items():
        print(f"{name}: {value:.2f}")
    for name, diff in compared.items():
        print(f"{name}: " + ", ".join(f"{k} {v}" for k, v in diff.items()))


if __name__ == "__main__":
    main()
