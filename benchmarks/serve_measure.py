"""What the serving benchmarks share: the data, the server's readiness, the two load tools.

`fill` writes users' lists as the worker writes them; `wrk_max` is the closed-loop maximum
(wrk, Debian's); `open_loop` runs `benchmarks/serve_load.py` in its own process for the
latency at a fixed rate.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
import redis

from tailor.operators.redis.keys import fallback_key, fallbacks_key, recs_key

ROOT = Path(__file__).resolve().parents[1]
PREFIX = "bench"
ITEMS = 10
WRK_SCRIPT = """
math.randomseed(7)
request = function()
  return wrk.format("GET", string.format("/v1/users/user-%06d/recommendations?n=10",
                                         math.random(0, {users} - 1)))
end
"""


def fill(client: redis.Redis, users: int, prefix: str = PREFIX) -> None:
    """`users` lists of `ITEMS` items shaped like the worker's, and the trending and popular
    fallback lists (what an unknown user is served)."""
    pipe = client.pipeline(transaction=False)
    for u in range(users):
        items = [
            {
                "item_id": f"item-{(u * 7 + j) % 5000}",
                "score": round(1.0 / (j + 1), 6),
                "source": "cooc",
                "reason": f"viewed with item-{u % 5000}",
            }
            for j in range(ITEMS)
        ]
        pipe.set(recs_key(prefix, user_id(u)), orjson.dumps({"version": 3, "items": items}))
        if u % 5000 == 4999:
            pipe.execute()
    for name in ("trending", "popular"):
        listed = [{"item_id": f"item-{j}", "score": 100.0 - j} for j in range(50)]
        body = {"version": 1, "at": 1_700_000_000, "items": listed}
        pipe.set(fallback_key(prefix, name), orjson.dumps(body))
        pipe.hset(fallbacks_key(prefix), name, 1)
    pipe.execute()


def user_id(n: int) -> str:
    """The id of generated user `n`, as `benchmarks/serve_load.py` asks for it."""
    return f"user-{n:06d}"


def tree_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) used so far by process `pid` and its descendants (granian
    serves from a child process): what serving costs, whatever else runs on the machine."""
    tick = os.sysconf("SC_CLK_TCK")
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        try:
            with open(f"/proc/{current}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as handle:
                    todo += [int(child) for child in handle.read().split()]
        except OSError:  # exited meanwhile
            continue
    return total


def machine_busy_s() -> float:
    """CPU seconds the whole machine has been busy since boot (all cores, from /proc/stat)."""
    with open("/proc/stat") as handle:
        values = [int(v) for v in handle.readline().split()[1:]]
    return (sum(values) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")


def busy_cores(seconds: float = 2.0) -> float:
    """How many cores the machine kept busy over `seconds` (from /proc/stat): measured
    between runs, it is what other work takes from the measurement."""

    def sample() -> tuple[int, int]:
        with open("/proc/stat") as handle:
            values = [int(v) for v in handle.readline().split()[1:]]
        idle = values[3] + values[4]  # idle + iowait
        return sum(values) - idle, sum(values)

    busy0, total0 = sample()
    time.sleep(seconds)  # the sampling window itself
    busy1, total1 = sample()
    return round(os.cpu_count() or 1) * (busy1 - busy0) / max(1, total1 - total0)


def wait_quiet(max_busy: float, max_wait_s: float) -> float:
    """Wait (at most `max_wait_s`) until other work keeps fewer than `max_busy` cores busy;
    returns the last reading, which the run records either way."""
    deadline = time.monotonic() + max_wait_s
    while True:
        busy = busy_cores()
        if busy < max_busy or time.monotonic() > deadline:
            return round(busy, 2)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(port: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)  # waiting for the server to listen
    raise RuntimeError(f"nothing listens on {port}")


def wrk_max(port: int, users: int, seconds: float) -> dict[str, float]:
    """The closed-loop maximum: requests/s and wrk's p99 at that load."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT.replace("{users}", str(users)))
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            "-c32",
            f"-d{seconds:g}s",
            "--latency",
            "-s",
            script.name,
            f"http://127.0.0.1:{port}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    os.unlink(script.name)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    assert p99 is not None, out
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    return {"wrk_rps": rps, "wrk_p99_ms": float(p99.group(1)) * scale}


def open_loop(
    port: int, users: int, rate: float, seconds: float, unknown: float = 0.0
) -> dict[str, Any]:
    """`benchmarks/serve_load.py` at `rate` for `seconds`, `unknown` the share of ids no
    user has; its JSON summary."""
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "serve_load.py"),
            "--port",
            str(port),
            "--rate",
            str(rate),
            "--duration",
            str(seconds),
            "--users",
            str(users),
            "--unknown",
            str(unknown),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return dict(orjson.loads(out))
