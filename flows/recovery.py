"""Bytewax recovery for `tailor run`: where the store lives, creating it, and the run settings.

With recovery, Bytewax snapshots every stateful step (per-user state, the global models) and
every source position at the end of each epoch, in SQLite files under `recovery.dir`. A
worker killed at any point restarts from the last completed epoch: the sources re-read from
the positions of that epoch, the state is the state of that epoch, so nothing is counted
twice and nothing is lost. What was written to Redis after that epoch is written again; the
sink is version-guarded and the models are batch-independent, so the replay writes the same
bytes, sends no update notice twice, and writes no dead letter twice (the sink indexes them
by input: `tailor.operators.redis.deadletters`); tested in tests/flows/test_recovery.py with bad
input mixed in.

The store's partition count is fixed when it is created; an existing store is used as it is.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from bytewax.recovery import RecoveryConfig, init_db_dir

from tailor.flows.config import Config, ConfigError

__all__ = [
    "RecoveryRun",
    "describe",
    "ensure_store",
    "partition_files",
    "recovery_settings",
    "store_path",
]

log = logging.getLogger("tailor")

#: How Bytewax names its recovery partitions inside the store directory.
PARTITION_GLOB = "part-*.sqlite3"


@dataclass(frozen=True)
class RecoveryRun:
    """What `bytewax.run.cli_main` needs: the store and the epoch (= snapshot) interval."""

    recovery_config: RecoveryConfig
    epoch_interval: timedelta
    store: Path
    created: bool

    def run_arguments(self) -> dict[str, Any]:
        """The keyword arguments that turn recovery on in Bytewax's `cli_main` and
        `run_main`, so every runner of the flow (the worker, the benchmarks) passes the same."""
        return {"epoch_interval": self.epoch_interval, "recovery_config": self.recovery_config}


def partition_files(store: Path) -> list[Path]:
    """The recovery partitions already in `store` (none when it does not exist)."""
    return sorted(store.glob(PARTITION_GLOB)) if store.is_dir() else []


def ensure_store(store: Path, partitions: int) -> bool:
    """Create a store of `partitions` partitions unless `store` already holds one.

    Returns whether it was created. The partitions are made in a sibling directory and moved
    into place in one rename: a process killed while creating them leaves no half-made store
    that the next start would refuse (Bytewax stops on missing partitions).
    """
    if partitions < 1:
        raise ConfigError(f"recovery.partitions: must be >= 1, got {partitions}")
    if partition_files(store):
        return False
    if store.exists() and (not store.is_dir() or any(store.iterdir())):
        raise ConfigError(f"recovery.dir: {store} exists and is not a recovery store")
    store.parent.mkdir(parents=True, exist_ok=True)
    scratch = store.parent / f".{store.name}.creating-{os.getpid()}"
    shutil.rmtree(scratch, ignore_errors=True)  # left by an earlier start with our pid
    scratch.mkdir()
    try:
        init_db_dir(scratch, partitions)
        os.replace(scratch, store)  # onto a missing or empty directory: atomic on POSIX
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return True


def store_path(config: Config) -> Path:
    """Where this prefix's store lives.

    One store per key prefix: a store remembers its sources' partitions by stream name, and
    Bytewax stops with a panic on a store made for other streams.
    """
    return (Path(config.recovery.dir).expanduser() / config.prefix).resolve()


def recovery_settings(config: Config) -> RecoveryRun | None:
    """The recovery store for this run, created on first start; None when recovery is off."""
    section = config.recovery
    if not section.enabled:
        return None
    interval_s = section.snapshot_interval_s
    if interval_s <= 0:
        raise ConfigError(f"recovery.snapshot_interval_s: must be > 0, got {interval_s}")
    store = store_path(config)
    try:
        created = ensure_store(store, section.partitions)
    except OSError as exc:
        raise ConfigError(f"recovery.dir: cannot create {store} ({exc})") from exc
    return RecoveryRun(
        recovery_config=RecoveryConfig(store),
        epoch_interval=timedelta(seconds=interval_s),
        store=store,
        created=created,
    )


def describe(settings: RecoveryRun | None) -> str:
    """One log line on where the state lives, and whether this run resumes from it."""
    if settings is None:
        return "recovery off: a restart starts from empty state and the start of the streams"
    found = len(partition_files(settings.store))
    action = "created" if settings.created else "resuming from"
    interval = settings.epoch_interval.total_seconds()
    return (
        f"recovery: {action} {settings.store} ({found} partition(s)), "
        f"snapshots every {interval:g} s"
    )
