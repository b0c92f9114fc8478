"""A real `tailor serve` process for the HTTP API tests, and fixtures written as the worker
(and the fallback publisher) write them: every key name from `tailor.operators.redis.keys`."""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import redis

from tailor.operators.redis.heartbeat import beat_value
from tailor.operators.redis.keys import (
    fallback_key,
    fallbacks_key,
    heartbeat_key,
    recs_key,
    user_key,
)
from tests.conftest import free_port

#: What the serving processes of the tests are started with (besides Redis and the prefix).
SERVE_ENV = {
    "TAILOR_METRICS_PORT": "0",
    "TAILOR_SERVE_PAGE_SIZE": "50",
    "TAILOR_SERVE_SEGMENTS_CACHE_S": "0",
    "TAILOR_SERVE_HEARTBEAT_MAX_AGE_S": "5",
    "TAILOR_SERVE_REDIS_TIMEOUT_S": "0.5",
}


class Served:
    """A `tailor serve` process on a free port; `get` makes one real HTTP round trip."""

    def __init__(self, proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.proc, self.port, self.log = proc, port, log

    def get(self, path: str) -> tuple[int, bytes, dict[str, str]]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            headers = {k.lower(): v for k, v in response.getheaders()}
            return response.status, response.read(), headers
        finally:
            conn.close()

    def json(self, path: str) -> tuple[int, Any]:
        status, body, headers = self.get(path)
        assert headers["content-type"].startswith("application/json"), headers
        return status, orjson.loads(body)


def serve_env(redis_url: str, prefix: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAILOR_")}
    return {**env, "REDIS_URL": redis_url, "TAILOR_REDIS_PREFIX": prefix, **SERVE_ENV, **extra}


@contextmanager
def serving(redis_url: str, prefix: str, log: Path, **extra: str) -> Iterator[Served]:
    """`tailor serve` until the block ends (SIGTERM), once it answers ``/healthz``."""
    port = free_port()
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tailor.flows.cli", "serve", "--port", str(port)],
            env=serve_env(redis_url, prefix, **extra),
            stdout=out,
            stderr=out,
        )
    served = Served(proc, port, log)
    try:
        wait_healthy(served)
        yield served
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def wait_healthy(served: Served, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        assert served.proc.poll() is None, served.log.read_text()[-3000:]
        try:
            if served.get("/healthz")[0] == 200:
                return
        except OSError:
            pass
        assert time.monotonic() < deadline, served.log.read_text()[-3000:]
        time.sleep(0.05)  # waiting for the process to listen, not synchronising a test


def items(*ids: str, source: str | None = "cooc") -> list[dict[str, Any]]:
    """A list best first, scores falling; with `source` as the worker writes a user's list."""
    out: list[dict[str, Any]] = []
    for rank, item in enumerate(ids):
        entry: dict[str, Any] = {"item_id": item, "score": round(1.0 / (rank + 1), 4)}
        if source is not None:
            entry["source"] = source
        out.append(entry)
    return out


def write_recs(r: redis.Redis, prefix: str, stored_id: str, *ids: str, version: int = 4) -> None:
    r.set(recs_key(prefix, stored_id), orjson.dumps({"version": version, "items": items(*ids)}))


def write_profile(r: redis.Redis, prefix: str, stored_id: str, **fields: Any) -> None:
    """A profile hash: every field value JSON, as the sink writes it."""
    r.hset(user_key(prefix, stored_id), mapping={k: orjson.dumps(v) for k, v in fields.items()})


def publish_fallback(r: redis.Redis, prefix: str, name: str, *ids: str, version: int = 1) -> None:
    """One fallback list under the contract the worker's publisher follows."""
    body = {"version": version, "at": 1_700_000_000, "items": items(*ids, source=None)}
    r.set(fallback_key(prefix, name), orjson.dumps(body))
    r.hset(fallbacks_key(prefix), name, version)


def beat(r: redis.Redis, prefix: str, worker: int, workers: int, age_s: float) -> None:
    """A heartbeat written `age_s` seconds ago (by the clock of this machine)."""
    r.set(heartbeat_key(prefix, worker), beat_value(time.time() - age_s, worker, workers))
