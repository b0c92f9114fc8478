"""The recovery store on disk: a damaged store is refused in one line before Bytewax opens it,
compaction keeps it bounded by live state (and a resume from a compacted store gives the same
Redis state), and an erased user's id leaves every file of the store.

Real `tailor` commands in subprocesses, real Redis, real Bytewax stores.
"""

from __future__ import annotations

import os
import pickle
import shutil
import signal
import sqlite3
import struct
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, closing, contextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis

from flows.recovery import ensure_store, partition_files
from flows.store import compact_store
from operators.control import control_key
from operators.keys import updates_stream
from operators.models import ModelsState
from operators.user_state import UserStateParams
from state import snapshots
from state.user import UserState
from tests.conftest import free_port, snapshot_state, start_worker
from tests.flows.test_erasure import shopping, write_events

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
        [sys.executable, "-m", "flows.cli", "--config", str(config), *args],
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


# --- a damaged store -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def made_store(tmp_path_factory: pytest.TempPathFactory, redis_server: Any) -> Path:
    """A store written by a real run (two partitions, a few users), to damage copies of."""
    tmp = tmp_path_factory.mktemp("made")
    config = write_config(tmp, "tailor.toml")
    redis.Redis.from_url(redis_server.url).flushall()
    produce(redis_server.url, config, shopping("alice", 0) + shopping("bob", 30), tmp / "e.jsonl")
    ok(tailor(redis_server.url, config, "run", "--until-drained"))
    return store_dir(tmp)


def truncate(store: Path) -> Path:
    path = store / "part-0.sqlite3"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


def scribble(store: Path) -> Path:
    """Garbage over the second page onward, where the tables' b-trees start."""
    path = store / "part-1.sqlite3"
    data = bytearray(path.read_bytes())
    data[4096:12288] = bytes(range(256)) * 32
    path.write_bytes(bytes(data))
    return path


def empty(store: Path) -> Path:
    path = store / "part-0.sqlite3"
    path.write_bytes(b"")
    return path


def lose_one(store: Path) -> Path:
    (store / "part-1.sqlite3").unlink()
    return store


@pytest.mark.parametrize(
    ("damage", "says"),
    [
        (truncate, "is damaged (database disk image is malformed)"),
        (scribble, "is damaged (database disk image is malformed)"),
        (empty, "is damaged (no table"),
        (lose_one, "is incomplete (partitions [1] of 2 missing"),
    ],
    ids=["truncated", "garbage", "empty", "missing"],
)
def test_a_damaged_store_is_refused_naming_the_file(
    damage: Callable[[Path], Path], says: str, made_store: Path, redis_url: str, tmp_path: Path
) -> None:
    shutil.copytree(made_store, store_dir(tmp_path))
    named = damage(store_dir(tmp_path))
    config = write_config(tmp_path, "tailor.toml")
    for command in (["run", "--until-drained"], ["store", "compact"]):
        done = tailor(redis_url, config, *command)
        assert done.returncode == 2, done.stderr[-3000:]
        last = done.stderr.strip().splitlines()[-1]
        assert last.startswith(f"tailor: configuration error: recovery.dir: {named} {says}")
        assert "move the directory aside to start over" in last
        assert "Traceback" not in done.stderr and "panic" not in done.stderr


@pytest.mark.parametrize(
    ("settings", "moved_to", "reads"),
    [
        ({"redis": {"prefix": "other"}}, "other", "other:events:0, other:events:1"),
        ({"source": {"partitions": 1}}, PREFIX, f"{PREFIX}:events:0)"),
    ],
    ids=["other-prefix", "fewer-streams"],
)
def test_a_store_made_for_other_streams_is_refused(
    settings: dict[str, Any],
    moved_to: str,
    reads: str,
    made_store: Path,
    redis_url: str,
    tmp_path: Path,
) -> None:
    """Bytewax's own answer is a RuntimeError from Rust: 'not in this worker's routing map'."""
    moved = tmp_path / "recovery" / moved_to
    shutil.copytree(made_store, moved)
    config = write_config(tmp_path, "tailor.toml", **settings)
    done = tailor(redis_url, config, "run", "--until-drained")
    assert done.returncode == 2, done.stderr[-3000:]
    assert f"{moved}/part-" in done.stderr
    assert f"holds positions of {PREFIX}:events:" in done.stderr and reads in done.stderr
    assert "Traceback" not in done.stderr


def test_a_store_of_another_worker_count_is_refused(
    made_store: Path, redis_url: str, tmp_path: Path
) -> None:
    """Resumed with two workers, a one-worker store would resume one models replica and start
    the other empty: their segment models would part. Refused in one line instead."""
    shutil.copytree(made_store, store_dir(tmp_path))
    config = write_config(tmp_path, "tailor.toml", cluster={"workers_per_process": 2})
    done = tailor(redis_url, config, "run", "--until-drained")
    assert done.returncode == 2, done.stderr[-3000:]
    last = done.stderr.strip().splitlines()[-1]
    assert "was written by 1 worker(s), this run has 2" in last
    assert "move the directory aside to start over" in last
    assert "Traceback" not in done.stderr and "panic" not in done.stderr


# --- snapshots from another release --------------------------------------------------------


def rewrite_snapshots(store: Path, change: Callable[[bytes], bytes]) -> int:
    """Pass every step state of ours (an envelope) through `change`; how many changed."""
    changed = 0
    for path in partition_files(store):
        with closing(sqlite3.connect(path)) as conn:
            query = "SELECT rowid, ser_change FROM snaps WHERE ser_change IS NOT NULL"
            for rowid, blob in conn.execute(query).fetchall():
                state = pickle.loads(blob)  # Bytewax's pickle of the step's state: ours
                if isinstance(state, bytes) and state.startswith(snapshots.MAGIC):
                    row = pickle.dumps(change(state))
                    conn.execute("UPDATE snaps SET ser_change = ? WHERE rowid = ?", (row, rowid))
                    changed += 1
            conn.commit()
    return changed


def as_previous_release(envelope: bytes) -> bytes:
    """What the release before snapshot format 1 stored: the state object pickled whole."""
    _format, kind = snapshots.header(envelope)
    data = snapshots.decode(envelope, kind)
    if kind == "models":
        state: object = ModelsState.from_snapshot(data)
    elif kind == "user":
        state = UserState.from_snapshot(data, **UserStateParams().state_settings())
    else:  # the outputs step and the quality windows came later: any bare pickle will do
        state = data
    return pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)


def as_next_format(envelope: bytes) -> bytes:
    start = len(snapshots.MAGIC)
    return envelope[:start] + struct.pack(">H", snapshots.FORMAT + 1) + envelope[start + 2 :]


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (as_previous_release, "from a release before snapshot format 1"),
        (as_next_format, f"of format {snapshots.FORMAT + 1}, newer than this release's"),
    ],
    ids=["previous-release", "newer-format"],
)
def test_snapshots_of_another_release_are_refused_in_one_line(
    change: Callable[[bytes], bytes], says: str, made_store: Path, redis_url: str, tmp_path: Path
) -> None:
    """Bytewax would hand the models step a bare pickle of objects whose classes have moved
    on; the store is refused before it starts, by `run` and `store check` alike."""
    store = store_dir(tmp_path)
    shutil.copytree(made_store, store)
    assert rewrite_snapshots(store, change) >= 3  # the models key and the users
    config = write_config(tmp_path, "tailor.toml")
    for command in (["run", "--until-drained"], ["store", "check"]):
        done = tailor(redis_url, config, *command)
        assert done.returncode == 2, done.stderr[-3000:]
        last = done.stderr.strip().splitlines()[-1]
        assert last.startswith(f"tailor: configuration error: recovery.dir: {store}/part-")
        assert says in last and "move the directory aside to start over" in last
        assert "Traceback" not in done.stderr and "panic" not in done.stderr


def test_a_store_of_the_current_format_checks_intact(made_store: Path, redis_url: str) -> None:
    config = write_config(made_store.parent.parent, "check.toml")
    done = tailor(redis_url, config, "store", "check")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "intact" in done.stdout + done.stderr


# --- tombstones and resume -----------------------------------------------------------------


def active_users(port: int) -> float:
    """Users held by the state step and by the outputs step (each forgets them at the TTL)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as page:
        lines = page.read().decode().splitlines()
    held = [
        float(line.split()[1])
        for line in lines
        for name in ("tailor_active_users ", "tailor_active_output_users ")
        if line.startswith(name)
    ]
    assert len(held) == 2, "no tailor_active_users or tailor_active_output_users gauge"
    return sum(held)


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


def visit_and_expire(redis_url: str, r: redis.Redis, tmp_path: Path) -> str:
    """Phase one: VISITORS one-event users, a 0.5 s TTL; stop (SIGTERM) once all expired."""
    visitors = [
        {"event_id": f"v{n}", "user_id": f"gone-{n}", "type": "page_view", "ts": 1_700_000_000 + n}
        for n in range(VISITORS)
    ]
    port = free_port()
    config = write_config(tmp_path, "short.toml", metrics={"port": port}, state={"ttl_s": 0.5})
    produce(redis_url, config, visitors, tmp_path / "visitors.jsonl")
    log = tmp_path / "worker.log"
    worker = start_worker(redis_url, config, log)
    try:
        wait_until(lambda: r.xlen(updates_stream(PREFIX)) >= VISITORS, "every visitor processed")
        wait_until(lambda: active_users(port) == 0, "every visitor expired")
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=DEADLINE_S) == 0, log.read_text()[-3000:]
    return log.read_text()


def come_back(redis_url: str, tmp_path: Path) -> dict[str, Any]:
    """Phase two, resumed from the store: returning and new users, no expiry; Redis after."""
    events: list[dict[str, object]] = []
    for n in range(60):
        events += shopping(f"gone-{n}", 2 * n, n=3) + shopping(f"new-{n}", 3 * n, n=4)
    config = write_config(tmp_path, "long.toml", state={"ttl_s": 3600.0})
    produce(redis_url, config, events, tmp_path / "back.jsonl")
    assert "resuming from" in ok(tailor(redis_url, config, "run", "--until-drained"))
    with closing(redis.Redis.from_url(redis_url)) as client:
        return snapshot_state(client, PREFIX)


def test_compaction_bounds_the_store_by_live_state_and_resumes_the_same(
    redis_url: str, r: redis.Redis, tmp_path: Path
) -> None:
    reference_dir, compacted_dir = tmp_path / "reference", tmp_path / "compacted"
    reference_dir.mkdir()
    compacted_dir.mkdir()
    ensure_store(store_dir(reference_dir), 2)
    with held_open(store_dir(reference_dir)):  # Bytewax as it is: nothing compacts this one
        log = visit_and_expire(redis_url, r, reference_dir)
        assert "recovery store not compacted" in log
        # a tombstone per visitor in each per-user step: the state step and the outputs step;
        # and one of the models' `collect` step, stateless, whose replica key it discards
        assert snaps(store_dir(reference_dir), "ser_change IS NULL") == 2 * VISITORS + 1
        reference = come_back(redis_url, reference_dir)
    r.flushall()

    log = visit_and_expire(redis_url, r, compacted_dir)
    assert f"{2 * VISITORS + 1} tombstone(s) removed" in log
    assert snaps(store_dir(compacted_dir), "ser_change IS NULL") == 0
    # left: the two stream positions, the control stream's, and the models
    assert snaps(store_dir(compacted_dir)) == 4
    got = come_back(redis_url, compacted_dir)
    live_users = 120  # each in the state step and the outputs step
    users_and_models = "step_id NOT LIKE '%quality%'"  # the quality windows: there if scored
    assert snaps(store_dir(compacted_dir), users_and_models) == 4 + 2 * live_users
    assert got == reference


def test_a_tombstone_over_an_older_snapshot_is_kept(tmp_path: Path) -> None:
    """Before Bytewax's commit has collected the older snapshot (after a crash), deleting the
    tombstone would resurrect the older state on resume: only lone tombstones go."""
    store = tmp_path / "s"
    ensure_store(store, 1)
    rows = [("u", "a", 1, b"state"), ("u", "a", 2, None), ("u", "b", 2, None), ("u", "c", 1, b"x")]
    with closing(sqlite3.connect(partition_files(store)[0])) as conn:
        conn.executemany(
            "INSERT INTO snaps (step_id, state_key, snap_epoch, ser_change) VALUES (?,?,?,?)", rows
        )
        conn.commit()
    done = compact_store(store)
    assert (done.tombstones, done.rows) == (1, 3)
    with closing(sqlite3.connect(partition_files(store)[0])) as conn:
        left = conn.execute("SELECT state_key, snap_epoch FROM snaps ORDER BY 1, 2").fetchall()
    assert left == [("a", 1), ("a", 2), ("c", 1)]


def test_compaction_refuses_a_store_a_worker_holds(
    made_store: Path, redis_url: str, tmp_path: Path
) -> None:
    shutil.copytree(made_store, store_dir(tmp_path))
    config = write_config(tmp_path, "tailor.toml")
    with held_open(store_dir(tmp_path)):
        done = tailor(redis_url, config, "store", "compact")
    assert done.returncode == 1
    assert "is open in another process" in done.stderr and "stop the worker first" in done.stderr
    done = tailor(redis_url, config, "store", "compact")
    assert done.returncode == 0 and "compacted" in done.stdout


# --- erasure ---------------------------------------------------------------------------------


@pytest.mark.parametrize("stop", ["sigterm", "sigkill-then-restart"])
def test_an_erased_id_leaves_every_file_of_the_store(
    stop: str, redis_url: str, r: redis.Redis, tmp_path: Path
) -> None:
    config = write_config(tmp_path, "tailor.toml")
    events = shopping("alice-x7", 0, n=12) + shopping("bob", 30) + shopping("carol", 90)
    produce(redis_url, config, events, tmp_path / "e.jsonl")
    log = tmp_path / "worker.log"
    worker = start_worker(redis_url, config, log)
    try:
        wait_until(lambda: r.exists(f"{PREFIX}:user:alice-x7") == 1, "alice's profile")
        wait_until(lambda: on_disk(store_dir(tmp_path), b"alice-x7"), "alice in the store")
        ok(tailor(redis_url, config, "forget", "alice-x7"))
        wait_until(lambda: r.exists(f"{PREFIX}:user:alice-x7") == 0, "the erasure applied")
        # kept until durable, then deleted by the running worker (two snapshots later)
        wait_until(lambda: r.xlen(control_key(PREFIX)) == 0, "the request deleted")
        refused = tailor(redis_url, config, "store", "compact")  # not beside a running worker
        assert refused.returncode == 1 and "a worker is running on it" in refused.stderr
        assert worker.poll() is None
    finally:
        worker.send_signal(signal.SIGKILL if stop == "sigkill-then-restart" else signal.SIGTERM)
        worker.wait(timeout=DEADLINE_S)
    if stop == "sigkill-then-restart":
        assert worker.returncode == -signal.SIGKILL
        assert on_disk(store_dir(tmp_path), b"alice-x7")  # a crash compacts nothing
        ok(tailor(redis_url, config, "run", "--until-drained"))
    else:
        assert worker.returncode == 0, log.read_text()[-3000:]
        assert "compacted" in log.read_text()
    assert not on_disk(store_dir(tmp_path), b"alice-x7")
    assert on_disk(store_dir(tmp_path), b"bob")  # the others' state is still there


def on_disk(store: Path, needle: bytes) -> bool:
    """Whether any file in the store directory (-wal and -shm included) holds `needle`."""
    return any(needle in path.read_bytes() for path in store.iterdir() if path.is_file())
