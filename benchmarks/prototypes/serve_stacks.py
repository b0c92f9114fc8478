"""Prototypes for `tailor serve`'s stack (docs/design/serve.md): one endpoint, four stacks.

Each app answers ``GET /v1/users/{user_id}/recommendations?n=`` the same way: one GET on an
async Redis client (`redis.asyncio`, one pool per process), the stored JSON parsed, cut to
``n`` and serialised with orjson. The stacks:

* ``starlette``: Starlette's router and `Response`, served by uvicorn (uvloop, httptools);
* ``fastapi``: FastAPI with a typed path and query parameter (pydantic validates ``n``),
  returning an orjson `Response` as a speed-minded FastAPI app would, on uvicorn;
* ``starlette-granian``: the Starlette app served by granian (a Rust HTTP server);
* ``raw``: a bare ASGI callable on uvicorn, no framework: the floor.

    pip install fastapi granian   # the two stacks Tailor does not depend on
    python benchmarks/prototypes/serve_stacks.py [--users 10000] [--rate 2000] [--seconds 10]

For each stack it starts its own redis-server, fills it, starts the server process (one
worker), measures the most requests/s with wrk (closed loop, 32 connections) and the
latency at ``--rate`` with the open-loop generator (`benchmarks/serve_load.py`), each in
its own process. Prints one JSON line per stack and round.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import redis.asyncio as aioredis

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from benchmarks.hostile_payloads import start_server  # noqa: E402
from benchmarks.serve_measure import (  # noqa: E402
    PREFIX,
    fill,
    free_port,
    open_loop,
    tree_cpu_s,
    wait_http,
    wait_quiet,
    wrk_max,
)

#: Before each run, wait (at most MAX_WAIT_S) until other work keeps fewer cores busy than this.
MAX_BUSY_CORES = 0.5
MAX_WAIT_S = 120.0


def _client() -> aioredis.Redis:
    pool = aioredis.BlockingConnectionPool.from_url(
        os.environ["PROTO_REDIS_URL"], max_connections=32
    )
    return aioredis.Redis(connection_pool=pool)


def _answer(raw: bytes | None, n: int) -> bytes:
    if raw is None:
        return b'{"error":"unknown user"}'
    recs = orjson.loads(raw)
    return orjson.dumps({"items": recs["items"][:n], "version": recs["version"]})


def starlette_factory() -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    client = _client()

    async def recs(request: Request) -> Response:
        raw = await client.get(f"{PREFIX}:recs:{request.path_params['user_id']}")
        n = int(request.query_params.get("n", "10"))
        return Response(_answer(raw, n), 200 if raw else 404, media_type="application/json")

    return Starlette(routes=[Route("/v1/users/{user_id}/recommendations", recs)])


def fastapi_factory() -> Any:
    from fastapi import FastAPI, Query
    from fastapi.responses import Response

    client = _client()
    app = FastAPI()

    @app.get("/v1/users/{user_id}/recommendations")
    async def recs(user_id: str, n: int = Query(10, ge=1, le=100)) -> Response:
        raw = await client.get(f"{PREFIX}:recs:{user_id}")
        return Response(_answer(raw, n), 200 if raw else 404, media_type="application/json")

    return app


def raw_factory() -> Any:
    client = _client()
    pattern = re.compile(r"^/v1/users/([^/]+)/recommendations$")

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        match = pattern.match(scope["path"])
        raw = await client.get(f"{PREFIX}:recs:{match.group(1)}") if match else None
        query = dict(p.split("=", 1) for p in scope["query_string"].decode().split("&") if p)
        body = _answer(raw, int(query.get("n", "10")))
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send(
            {"type": "http.response.start", "status": 200 if raw else 404, "headers": headers}
        )
        await send({"type": "http.response.body", "body": body})

    return app


STACKS: dict[str, list[str]] = {
    "starlette": ["uvicorn", "--factory", "benchmarks.prototypes.serve_stacks:starlette_factory"],
    "fastapi": ["uvicorn", "--factory", "benchmarks.prototypes.serve_stacks:fastapi_factory"],
    "raw": ["uvicorn", "--factory", "benchmarks.prototypes.serve_stacks:raw_factory"],
    "starlette-granian": [
        "granian",
        "--interface",
        "asgi",
        "--loop",
        "uvloop",
        "--factory",
        "benchmarks.prototypes.serve_stacks:starlette_factory",
    ],
}


def start_stack(stack: str, redis_url: str, port: int) -> subprocess.Popen[bytes]:
    exe = Path(sys.executable).parent
    argv = [str(exe / STACKS[stack][0]), *STACKS[stack][1:]]
    argv += ["--host", "127.0.0.1", "--port", str(port)]
    if stack != "starlette-granian":
        argv += [
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--no-access-log",
            "--log-level",
            "warning",
        ]
    else:
        argv += ["--no-access-log", "--log-level", "warning"]
    env = {**os.environ, "PROTO_REDIS_URL": redis_url, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(argv, env=env, cwd=ROOT)
    wait_http(port)
    return proc


def measure(stack: str, users: int, rate: float, seconds: float) -> dict[str, Any]:
    others = wait_quiet(MAX_BUSY_CORES, MAX_WAIT_S)
    server, client = start_server()
    port = free_port()
    redis_url = f"redis://127.0.0.1:{client.connection_pool.connection_kwargs['port']}/0"
    fill(client, users)
    proc = start_stack(stack, redis_url, port)
    try:
        open_loop(port, users, rate, 2.0)  # warm-up: imports, pools, caches
        cpu = tree_cpu_s(proc.pid)
        loaded = open_loop(port, users, rate, seconds)
        cpu_us = (tree_cpu_s(proc.pid) - cpu) / max(1, loaded["requests"]) * 1e6
        most = wrk_max(port, users, seconds)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        server.terminate()
        server.wait(timeout=10)
    keys = ("p50_ms", "p99_ms", "p999_ms", "achieved_rps", "send_lag_p99_ms", "errors")
    load = round(os.getloadavg()[0], 2)  # other work on the machine during the run
    return {
        "stack": stack,
        "cpu_us_per_request": round(cpu_us, 1),
        **most,
        **{k: loaded[k] for k in keys},
        "loadavg_1m": load,
        "others_busy_cores": others,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=2000.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--stacks", default=",".join(STACKS))
    args = parser.parse_args()
    for round_ in range(args.rounds):
        for stack in args.stacks.split(","):
            result = measure(stack, args.users, args.rate, args.seconds)
            print(orjson.dumps({"round": round_, **result}).decode(), flush=True)


if __name__ == "__main__":
    main()
