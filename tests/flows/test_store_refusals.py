"""A recovery store that cannot resume is refused in one line before Bytewax opens it: damaged,
made for other streams, written with another worker count, or by another release; and
compaction leaves a store alone while a worker holds it.

Real `tailor` commands in subprocesses, real Redis, real Bytewax stores.
"""

from __future__ import annotations

import pickle
import shutil
import sqlite3
import struct
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import redis

from tailor.flows.recovery import partition_files
from tailor.state import snapshots
from tailor.state.profile.user import UserState
from tests.flows.store_support import (
    PREFIX,
    held_open,
    ok,
    produce,
    store_dir,
    tailor,
    write_config,
)
from tests.flows.test_erasure import shopping
from tests.settings_support import state_params

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
        # the data, not the object: an epoch's models snapshot may be changes against bases
        # stored elsewhere, which a lone envelope cannot rebuild (and a bare pickle of any
        # content is what the check refuses)
        state: object = data
    elif kind == "user":
        state = UserState.from_snapshot(data, **state_params().state_settings())
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
