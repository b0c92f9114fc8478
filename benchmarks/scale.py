"""Scale-out: one backlog drained by 1 and 2 (or 4) `tailor run` processes, and the bare I/O.

In one run, on a redis-server it starts on a free port:

1. publishes MovieLens latest-small cycled `--cycles` times as new users (302,508 events by
   default; `benchmarks/scale_io.py`) with `tailor produce`'s own code, routed for the largest
   process count (each user in a partition their own worker reads), and keeps a copy;
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
shut-down with nothing to read. Peak RSS (VmHWM) and CPU seconds are each process's own;
`other CPU s` is what the rest of the machine used meanwhile (/proc/stat's busy time less
the workers' and Redis's; the benchmark's own polling is in it): the shared machine's noise.

One validation setting differs from the defaults: the cycles span 67 years, so
`validation.max_future_s` is raised until no event is ahead of the clock (with the default,
later cycles would be dead-lettered as `ts_future`: cheap, and not what is measured). The
table shows the dead-letter stream's length per run (capped at `output.deadletter_maxlen`);
it should be 0. `--default-validation` keeps the default
instead, to see what a naive cycled backlog measures: over half of the events (the third cycle
and most of the second are in the future) are then dead letters, far cheaper than accepted ones.

    flock /work/wt/measure.lock python benchmarks/scale.py [--events N] [--cycles 3]
        [--processes 1,2] [--skip-bare] [--compare] [--json] [--profile DIR]
        [--default-validation]

`--profile DIR` runs each backlog run's workers under `py-spy record --native --threads
--format raw` (collapsed stacks with Bytewax's Rust frames and the thread id, one file per
process, on-CPU samples only):
for finding where the time goes, not for timing (sampling slows the workers, and the run's
peak RSS is py-spy's).

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.procstat import (
    machine_busy_s,
    merge_threads,
    peak_rss_mb,
    thread_cpu_s,
    thread_summary,
)
from benchmarks.scale_io import (
    Backlog,
    bare_run,
    cycled,
    movielens_events,
    newest_ts,
    publish_backlog,
)
from benchmarks.scale_report import PROFILE_FIELDS, Profile, WorkerRun, compare, report
from benchmarks.throughput import start_server
from tailor.flows.config import load_config
from tailor.operators.redis.keys import deadletter_stream, quality_key, recs_key, updates_stream

PREFIX = "tailor"


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


@dataclass(frozen=True)
class Launch:
    """How worker processes are started: their Redis, the validation bound, where logs go,
    and (with `--profile`) where py-spy writes one raw profile per process."""

    url: str
    max_future_s: float
    logs: Path
    profile: Path | None = None

    def command(self, processes: int, process_id: int, profiled: bool) -> list[str]:
        tailor = shutil.which("tailor") or str(Path(sys.executable).with_name("tailor"))
        run = [tailor, "run", "--until-drained"]
        if not (profiled and self.profile):
            return run
        out = self.profile / f"worker-{processes}-{process_id}.txt"
        spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        return [
            spy,
            "record",
            "--native",
            "--threads",
            "--format",
            "raw",
            "-r",
            "100",
            "-o",
            str(out),
            "--",
            *run,
        ]


def spawn(launch: Launch, processes: int, profiled: bool = False) -> list[subprocess.Popen]:
    """One `tailor run --until-drained` per process; a cluster when more than one."""
    addresses = [f"127.0.0.1:{free_port()}" for _ in range(processes)] if processes > 1 else []
    procs = []
    for pid in range(processes):
        log = (launch.logs / f"worker-{processes}-{pid}.log").open("wb")
        env = worker_env(launch.url, launch.max_future_s, addresses, pid)
        if profiled and launch.profile:  # the seed `tailor` pins by re-exec, which py-spy
            env["PYTHONHASHSEED"] = "0"  # would not follow: set beforehand, same result
        procs.append(
            subprocess.Popen(
                launch.command(processes, pid, profiled),
                env=env,
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
    """Wait for every process (exit time, CPU from wait4), noting the first notice, each
    process's peak RSS (polled every 10 ms: VmHWM only grows, so the last poll is close) and
    its threads' CPU seconds."""
    pending = {p.pid: i for i, p in enumerate(procs)}
    exits, rss, cpu = [0.0] * len(procs), [0.0] * len(procs), [0.0] * len(procs)
    threads: list[dict[int, float]] = [{} for _ in procs]
    first, polls = None, 0
    while pending:
        polls += 1
        for pid, i in list(pending.items()):
            rss[i] = max(rss[i], peak_rss_mb(pid))
            if polls % 10 == 0:  # every 0.1 s: the last sample misses at most that
                threads[i] = merge_threads(threads[i], thread_cpu_s(pid))
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
    first = first or first_notice_s(client)
    summaries = [thread_summary(p.pid, t) for p, t in zip(procs, threads, strict=True)]
    return {"exits": exits, "rss": rss, "cpu": cpu, "threads": summaries, "first": first}


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


def timed_workers(launch: Launch, backlog: Backlog, processes: int, keep: bool) -> WorkerRun:
    """An empty run (start-up and shut-down alone), then the backlog from a fresh restore."""
    client = redis.Redis.from_url(launch.url)
    backlog.clear()
    started = time.time()
    reap(spawn(launch, processes), client, launch.logs)
    empty_run_s = time.time() - started
    events = backlog.restore()
    cpu_before, busy_before = redis_cpu_s(client), machine_busy_s()
    started = time.time()
    waited = reap(spawn(launch, processes, profiled=True), client, launch.logs)
    busy = machine_busy_s() - busy_before
    redis_cpu = redis_cpu_s(client) - cpu_before
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
        redis_cpu_s=round(redis_cpu, 1),
        other_cpu_s=round(busy - redis_cpu - sum(waited["cpu"]), 1),
        thread_cpu_s=waited["threads"],
        users=sum(1 for _ in client.scan_iter(f"{PREFIX}:user:*", count=1000)),
        dead_letters=int(client.xlen(deadletter_stream(PREFIX))),
        quality=read_quality(client),
        profiles=read_profiles(client) if keep else {},
    )


def read_quality(client: redis.Redis) -> dict[str, Any]:
    """The live quality record the workers left: per variant, recall, NDCG, MRR, n."""
    raw: Any = client.hget(quality_key(PREFIX), "record")
    return dict(orjson.loads(raw)) if raw else {}


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
    parser.add_argument(
        "--default-validation",
        action="store_true",
        help="keep validation.max_future_s: later cycles are dead-lettered as ts_future",
    )
    parser.add_argument(
        "--profile", type=Path, help="py-spy raw profiles of each worker here (times invalid)"
    )
    args = parser.parse_args()
    counts = [int(n) for n in args.processes.split(",")]
    partitions = load_config(env={}).source.partitions
    events = movielens_events()
    cycles = max(args.cycles, -(-(args.events or 0) // len(events)))
    payloads = list(cycled(events, cycles, args.events))
    max_future_s = max(86400.0, newest_ts(payloads) - time.time() + 86400.0)
    if args.default_validation:
        max_future_s = load_config(env={}).validation.max_future_s
    server, url = start_server()
    logs = Path(tempfile.mkdtemp(prefix="scale-logs-"))
    try:
        publish_backlog(url, PREFIX, partitions, payloads, workers=max(counts))
        backlog = Backlog(url, PREFIX, partitions)
        assert backlog.save() == len(payloads)
        bare = [] if args.skip_bare else bare_both(url, backlog.keys, "before")
        launch = Launch(url, max_future_s, logs, args.profile)
        runs = [timed_workers(launch, backlog, n, args.compare) for n in counts]
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


if __name__ == "__main__":
    main()
