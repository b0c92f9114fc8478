"""Helpers shared by the recovery-store tests: a config with a store, `tailor` subprocesses,
and the snapshot rows on disk; a store held open as a running worker holds it."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, closing, contextmanager
from pathlib import Path
from typing import Any

import orjson

from tailor.flows.recovery import partition_files
from tests.flows.test_erasure import write_events

PREFIX = "store"
#: One-visit users expired by the TTL in the tombstone test.
VISITORS = 1500
#: Against a hang only, never to synchronise.
DEADLINE_S = 120.0


def write_config(tmp_path: Path, name: str, **sections: dict[str, Any]) -> Path:
    """A config file: two stream partitions, a store of two partitions under tmp_path."""
    settings: dict[str, dict[str, Any]] = {
        "redis": {"prefix": PREFIX},
        "metrics": {"port": 0},
        "source": {"partitions": 2},
        "segments": {"warmup": 1},
        "recovery": {
            "enabled": True,
            "dir": str(tmp_path / "recovery"),
            "snapshot_interval_s": 0.2,
            "partitions": 2,
        },
    }
    for section, values in sections.items():
        settings.setdefault(section, {}).update(values)
    lines = []
    for section, values in settings.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {orjson.dumps(value).decode()}" for key, value in values.items()]
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def tailor(redis_url: str, config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tailor.flows.cli", "--config", str(config), *args],
        env={**os.environ, "REDIS_URL": redis_url},
        capture_output=True,
        text=True,
        timeout=DEADLINE_S,
        check=False,
    )


def ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stderr


def produce(redis_url: str, config: Path, events: list[dict[str, object]], path: Path) -> None:
    ok(tailor(redis_url, config, "produce", str(write_events(path, events)), "--no-progress"))


def store_dir(tmp_path: Path) -> Path:
    return tmp_path / "recovery" / PREFIX


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        assert time.monotonic() < deadline, f"not within {DEADLINE_S} s: {what}"
        time.sleep(0.05)  # polling a condition with a deadline


def snaps(store: Path, where: str = "1") -> int:
    """Rows of every partition's `snaps` table matching `where`."""
    total = 0
    for path in partition_files(store):
        with closing(sqlite3.connect(path)) as conn:
            total += conn.execute(f"SELECT COUNT(*) FROM snaps WHERE {where}").fetchone()[0]
    return total


@contextmanager
def held_open(store: Path) -> Iterator[None]:
    """Keep a connection on every partition as a running worker does (Bytewax's connection
    set-up: WAL, 5 s busy timeout): compaction must leave the store alone."""
    with ExitStack() as stack:
        for path in partition_files(store):
            conn = stack.enter_context(closing(sqlite3.connect(path, timeout=5.0)))
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("SELECT COUNT(*) FROM snaps").fetchone()
        yield
