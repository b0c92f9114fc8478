"""Rescaling: a recovery store written by one worker count resumes with another.

`tailor run` with M workers is killed three quarters through the input, and `tailor run` with N
workers drains the rest from the same store. Every user's version, features, segment, name,
RFM tier and rule segments must equal one uninterrupted run's (those never depend on the
worker count), and every model replica of the second run must hold models that learned the
first part as well: the segment model's learn
points and the co-occurrence's items are the uninterrupted run's. Segments settle 30 days of
event time after an output is sent, so outputs are still waiting to be settled when the first
run is killed: they must be settled by whichever replica owns their user afterwards.

Real MovieLens ratings with bad entries mixed in, one stream partition, real Redis, the real
command in a subprocess (`tests.flows.test_recovery`'s input and helpers).
"""

from __future__ import annotations

import fcntl
import os
import pickle
import re
import signal
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest
import redis
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, TestingSource

from tailor.flows.config import load_config
from tailor.flows.recovery import ensure_store, partition_files
from tailor.flows.rescale import (
    REPLICA_STEP,
    SWEEP_STEP,
    replica_models,
    resume_epoch,
    written_workers,
)
from tailor.flows.store import take_for_run
from tailor.flows.worker import build_flow
from tailor.operators.models import ModelsState
from tailor.operators.redis.keys import stream_key
from tailor.operators.redis.routing import replica_keys
from tailor.state import snapshots
from tests.conftest import RedisServer, start_worker
from tests.flows.test_recovery import (
    PREFIX,
    Subscription,
    env,
    mixed_input,
    tailor,
    versions,
)

FIELDS = ("version", "features", "segment", "segment_name", "rfm_segment", "rule_segments")
#: Events in all (of `mixed_input`'s), and how many the first run has processed when it is
#: killed: late enough that it leaves snapshots of epochs not every worker finished.
EVENTS = 6000
KILL_AT = 4500


def write_config(path: Path, store: Path, workers: int) -> Path:
    """`test_recovery`'s settings with `workers` worker threads and a 2-partition store."""
    path.write_text(
        f'[redis]\nprefix = "{PREFIX}"\n[metrics]\nport = 0\n'
        "[source]\npartitions = 1\nbatch_size = 100\n"
        f"[segments]\nreorder_s = {30 * 86400}\n"
        f"[cluster]\nworkers_per_process = {workers}\n"
        f'[recovery]\nenabled = true\ndir = "{store}"\nsnapshot_interval_s = 0.2\n'
        "partitions = 2\n"
    )
    return path


def run(redis_url: str, tmp: Path, workers: int) -> str:
    """`tailor run --until-drained` with `workers` workers on `tmp`'s store; its stderr."""
    config = write_config(tmp / f"tailor-{workers}.toml", tmp / "store", workers)
    return tailor(redis_url, config, "run", "--until-drained").stderr


def publish(r: redis.Redis, payloads: list[bytes]) -> None:
    pipe = r.pipeline(transaction=False)
    for payload in payloads:
        pipe.xadd(stream_key(PREFIX, 0), {b"payload": payload})
    pipe.execute()


def profiles(r: redis.Redis) -> dict[str, tuple[bytes | None, ...]]:
    return {
        key.decode(): tuple(r.hmget(key, list(FIELDS)))
        for key in r.scan_iter(match=f"{PREFIX}:user:*", count=1000)
    }


def replicas(store: Path) -> dict[str, ModelsState]:
    """The model replicas a resume of `store` would load."""
    found = replica_models(store / PREFIX)
    assert found
    return found


def learned(state: ModelsState) -> tuple[int, int]:
    """(segment model learn points, co-occurrence items): what every replica learns."""
    cooc = state.recs.models["hybrid"].components["cooc"].cooc  # type: ignore[attr-defined]
    return state.segments.segmenter.registry.learned, len(cooc)


class Reference:
    def __init__(self, profiles: dict[str, tuple[bytes | None, ...]], learned: tuple[int, int]):
        self.profiles = profiles
        self.learned = learned


@pytest.fixture(scope="module")
def reference(
    redis_server: RedisServer, data_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Reference:
    """One uninterrupted one-worker run over all the input."""
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    tmp = tmp_path_factory.mktemp("rescale-reference")
    publish(client, mixed_input(data_dir)[:EVENTS])
    run(redis_server.url, tmp, 1)
    (state,) = replicas(tmp / "store").values()
    found = Reference(profiles(client), learned(state))
    client.flushall()
    client.close()
    return found


@pytest.mark.parametrize(("before", "after"), [(1, 2), (2, 1)])
def test_a_store_resumes_with_another_worker_count(
    before: int,
    after: int,
    reference: Reference,
    redis_url: str,
    r: redis.Redis,
    data_dir: Path,
    tmp_path: Path,
) -> None:
    """The first run is killed (SIGKILL) midway, so its last snapshot holds outputs still
    waiting to be settled; the second run has another worker count."""
    publish(r, mixed_input(data_dir)[:EVENTS])
    config = write_config(tmp_path / "first.toml", tmp_path / "store", before)
    sub = Subscription(redis_url)
    worker = start_worker(redis_url, config, tmp_path / "first.log", "--until-drained")
    reached = sub.wait_for(KILL_AT, worker, versions(r))
    sub.close()
    assert worker.poll() is None, f"finished at {reached}"
    worker.send_signal(signal.SIGKILL)
    assert worker.wait(timeout=120) == -signal.SIGKILL
    assert written_workers(tmp_path / "store" / PREFIX) == before
    log = run(redis_url, tmp_path, after)

    moved = re.search(rf"rescaled from {before} to {after} worker\(s\).* (\d+) pending", log)
    assert moved is not None, log[-3000:]
    assert int(moved.group(1)) > 0  # outputs were waiting: the case that needs handing over
    assert written_workers(tmp_path / "store" / PREFIX) == after
    got = profiles(r)
    want = reference.profiles
    differ = sorted(user for user in want if got.get(user) != want[user])
    assert not differ, differ[:10]
    assert got == want
    found = replicas(tmp_path / "store")
    assert sorted(found) == sorted(replica_keys(after))  # old replicas gone, new ones there
    assert {key: learned(state) for key, state in found.items()} == {
        key: reference.learned for key in found
    }


def test_the_replica_and_sweep_step_ids_are_the_workers(tmp_path: Path) -> None:
    """The rescale writes rows under `REPLICA_STEP` and `SWEEP_STEP`: the worker's steps must
    be those."""
    config = load_config(env={}).with_value("cluster", "workers_per_process", 2)
    flow = build_flow(config, TestingSource([]), TestingSink([]), TestingSink([]))
    ids: list[str] = []
    todo = list(flow.substeps)
    while todo:
        step = todo.pop()
        ids.append(step.step_id)
        todo += getattr(step, "substeps", [])
    assert REPLICA_STEP in ids and SWEEP_STEP in ids


def test_a_store_another_process_holds_is_refused_not_rescaled(
    redis_url: str, r: redis.Redis, data_dir: Path, tmp_path: Path
) -> None:
    """Rescaling needs the store to itself; with another process on it (a second process of
    a cluster sharing the directory), a run of another worker count stops in one line."""
    publish(r, mixed_input(data_dir)[:500])
    run(redis_url, tmp_path, 1)
    store = tmp_path / "store" / PREFIX
    fd = os.open(store / "tailor.lock", os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_SH)  # as a running worker holds it
    try:
        config = write_config(tmp_path / "two.toml", tmp_path / "store", 2)
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "tailor.flows.cli",
                "--config",
                str(config),
                "run",
                "--until-drained",
            ],
            env=env(redis_url),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        os.close(fd)
    assert done.returncode == 2, done.stderr[-3000:]
    last = done.stderr.strip().splitlines()[-1]
    assert "was written by 1 worker(s), this run has 2" in last
    assert "tailor store rescale" in last
    assert written_workers(store) == 1


EXS = "INSERT INTO exs (ex_num, worker_count, resume_epoch) VALUES (?, ?, ?)"
FRONTS = "INSERT INTO fronts (ex_num, worker_index, worker_frontier) VALUES (?, ?, ?)"
SNAPS = "INSERT INTO snaps (step_id, state_key, snap_epoch, ser_change) VALUES (?, ?, ?, ?)"


def test_snapshots_of_unfinished_epochs_are_dropped_at_start(tmp_path: Path) -> None:
    """A killed run leaves rows of epochs not every worker finished (here worker 1 stopped at
    5, worker 0 at 7): a start drops those (epoch 5 on), keeps the others and the last
    execution's progress, so a later resume never loads them (Bytewax's `resume_from`)."""
    store = tmp_path / "s"
    ensure_store(store, 2)
    first, second = partition_files(store)
    state = pickle.dumps(snapshots.encode("models", {}))
    rows = [("u", key, epoch, state) for epoch in (3, 4, 5, 6) for key in "ab"]
    with closing(sqlite3.connect(first)) as conn:
        conn.execute(EXS, (0, 1, 1))  # an earlier one-worker execution
        conn.execute(EXS, (1, 2, 2))
        conn.executemany(FRONTS, [(0, 0, 9), (1, 0, 7)])
        conn.executemany(SNAPS, rows[:4])
        conn.commit()
    with closing(sqlite3.connect(second)) as conn:
        conn.execute(FRONTS, (1, 1, 5))
        conn.executemany(SNAPS, rows[4:])
        conn.commit()
    assert (resume_epoch(store), written_workers(store)) == (5, 2)
    take_for_run(store, Dataflow("empty")).close()
    assert resume_epoch(store) == 5
    left = []
    for path in (first, second):
        with closing(sqlite3.connect(path)) as conn:
            left += conn.execute("SELECT state_key, snap_epoch FROM snaps").fetchall()
    assert sorted(left) == [("a", 3), ("a", 4), ("b", 3), ("b", 4)]
