"""An open-loop HTTP load generator: requests leave at a fixed rate, whatever the server does.

A closed-loop tool (wrk, hey, autocannon -R) sends a connection's next request only after
the previous answer, so a slow answer delays the requests behind it and their wait is never
measured (coordinated omission). Here request i is due at ``start + i / rate``; it goes out
on an idle keep-alive connection, on a new one (up to ``--connections``), or waits in a queue
for the first connection to free up, and its latency runs from when it was DUE to its last
response byte, as wrk2 measures. Debian has no wrk2 or vegeta, so this is the wrk2 method
in asyncio (uvloop), meant to run in its own process beside the server it loads.

    python benchmarks/serve_load.py --port 8080 --rate 2000 --duration 10 --users 10000

Paths are ``/v1/users/user-NNNNNN/recommendations?n=10`` for users drawn uniformly (seeded)
from ``--users``; ``--unknown`` is the share of ids no user has (the fallback path). Prints
one JSON object: the rate asked for and achieved, latency percentiles in milliseconds,
statuses, errors, and how late the generator itself sent (``send_lag_p99_ms``): if that is
not small against the latencies, the generator, not the server, is the bottleneck.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, cast

import orjson

#: Requests answered after the schedule ends get this long before they count as timeouts.
DRAIN_S = 5.0


def user_path(user: int) -> str:
    """The recommendations path of generated user `user` (`benchmarks/serve.py` fills them)."""
    return f"/v1/users/user-{user:06d}/recommendations?n=10"


def percentile(sorted_values: list[float], q: float) -> float:
    """The `q`-quantile (0..1) of sorted values, nearest rank; 0 for none.

    >>> percentile([1.0, 2.0, 3.0, 4.0], 0.5), percentile([1.0, 2.0, 3.0, 4.0], 0.99)
    (2.0, 4.0)
    """
    if not sorted_values:
        return 0.0
    rank = max(1, min(len(sorted_values), int(-(-q * len(sorted_values) // 1))))
    return sorted_values[rank - 1]


@dataclass
class Results:
    """What the run saw: per request latency from its due time, and send lag."""

    latencies: list[float] = field(default_factory=list)
    lags: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: int = 0


class Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection that runs one request at a time."""

    def __init__(self, on_done: Any) -> None:
        self.on_done = on_done
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.due = 0.0
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass

    def send(self, request: bytes, due: float) -> None:
        assert self.transport is not None
        self.due = due
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buffer[:end]).lower()
        length = 0
        for line in head.split(b"\r\n")[1:]:
            if line.startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        if len(self.buffer) < end + 4 + length:
            return
        status = int(head.split(b" ", 2)[1])
        del self.buffer[: end + 4 + length]
        self.on_done(self, status, self.due)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(exc)


class OpenLoop:
    """Sends `total` requests at `rate` per second over at most `connections` connections."""

    def __init__(self, host: str, port: int, connections: int, paths: list[str]) -> None:
        self.host, self.port, self.max_connections = host, port, connections
        self.requests = [
            f"GET {p} HTTP/1.1\r\nHost: {host}\r\nConnection: keep-alive\r\n\r\n".encode()
            for p in paths
        ]
        self.idle: deque[Connection] = deque()
        self.queue: deque[tuple[bytes, float]] = deque()
        self.opened = 0
        self.in_flight = 0
        self.results = Results()
        self.loop = asyncio.get_running_loop()
        self.all_done = asyncio.Event()

    def _done(self, conn: Connection, status: int, due: float) -> None:
        self.results.latencies.append(time.perf_counter() - due)
        self.results.statuses[status] += 1
        self._finished_one()
        if self.queue:
            request, next_due = self.queue.popleft()
            self._send(conn, request, next_due)
        else:
            self.idle.append(conn)

    def _finished_one(self) -> None:
        self.in_flight -= 1
        if self.in_flight == 0:
            self.all_done.set()

    def _send(self, conn: Connection, request: bytes, due: float) -> None:
        self.results.lags.append(time.perf_counter() - due)
        conn.send(request, due)

    async def _open(self) -> None:
        self.opened += 1
        try:
            _transport, conn = await self.loop.create_connection(
                lambda: Connection(self._done), self.host, self.port
            )
        except OSError:
            self.opened -= 1
            self.results.errors += 1
            if self.queue:
                self.queue.popleft()
                self._finished_one()
            return
        self._give(conn)

    def _give(self, conn: Connection) -> None:
        if self.queue:
            request, due = self.queue.popleft()
            self._send(conn, request, due)
        else:
            self.idle.append(conn)

    def _dispatch(self, request: bytes, due: float) -> None:
        self.in_flight += 1
        self.all_done.clear()
        if self.idle:
            self._send(self.idle.popleft(), request, due)
            return
        self.queue.append((request, due))
        if self.opened < self.max_connections:
            self.loop.create_task(self._open())

    async def warm(self, connections: int) -> None:
        """Open `connections` before the clock starts: connecting is not what is measured."""
        for _ in range(min(connections, self.max_connections)):
            await self._open()

    async def run(self, rate: float, total: int, rng: random.Random) -> float:
        """Send `total` requests on schedule; returns the seconds the schedule took."""
        interval = 1.0 / rate
        start = time.perf_counter() + 0.01
        for i in range(total):
            due = start + i * interval
            delay = due - time.perf_counter()
            if delay > 0.0005:
                await asyncio.sleep(delay)
            self._dispatch(self.requests[rng.randrange(len(self.requests))], due)
        elapsed = time.perf_counter() - start
        try:
            await asyncio.wait_for(self.all_done.wait(), DRAIN_S)
        except TimeoutError:
            self.results.errors += self.in_flight
        return elapsed


def summary(results: Results, rate: float, elapsed: float, warm_skip: int) -> dict[str, Any]:
    """Percentiles (ms) of the requests after the first `warm_skip`, and the counts."""
    latencies = sorted(results.latencies[warm_skip:])
    lags = sorted(results.lags[warm_skip:])
    ms = 1000.0
    return {
        "rate": rate,
        "achieved_rps": round(len(results.latencies) / elapsed, 1) if elapsed else 0.0,
        "requests": len(results.latencies),
        "p50_ms": round(percentile(latencies, 0.50) * ms, 3),
        "p90_ms": round(percentile(latencies, 0.90) * ms, 3),
        "p99_ms": round(percentile(latencies, 0.99) * ms, 3),
        "p999_ms": round(percentile(latencies, 0.999) * ms, 3),
        "max_ms": round((latencies[-1] if latencies else 0.0) * ms, 3),
        "send_lag_p99_ms": round(percentile(lags, 0.99) * ms, 3),
        "statuses": {str(k): v for k, v in sorted(results.statuses.items())},
        "errors": results.errors,
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    paths = [user_path(u) for u in range(args.users)]
    unknown = int(len(paths) * args.unknown / max(1e-9, 1 - args.unknown)) if args.unknown else 0
    paths += [user_path(args.users + u) for u in range(unknown)]
    load = OpenLoop(args.host, args.port, args.connections, paths)
    await load.warm(args.warm_connections)
    total = int(args.rate * args.duration)
    elapsed = await load.run(args.rate, total, rng)
    return summary(load.results, args.rate, elapsed, int(args.rate * args.skip_s))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--rate", type=float, default=2000.0, help="requests per second")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of schedule")
    parser.add_argument("--skip-s", type=float, default=1.0, help="seconds not counted")
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--unknown", type=float, default=0.0, help="share of unknown ids")
    parser.add_argument("--connections", type=int, default=256, help="at most this many")
    parser.add_argument("--warm-connections", type=int, default=16)
    parser.add_argument("--seed", type=int, default=1)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # plain asyncio still works, with more send lag
        runner = asyncio.run
    result = runner(main_async(args))
    sys.stdout.write(orjson.dumps(result).decode() + "\n")


if __name__ == "__main__":
    main()
