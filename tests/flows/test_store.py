"""The recovery store on disk: compaction keeps it bounded by live state (and a resume from a
compacted store gives the same Redis state), and an erased user's id leaves every file of the
store. Refusals of stores that cannot resume: `test_store_refusals.py`.

Real `tailor` commands in subprocesses, real Redis, real Bytewax stores.
"""

from __future__ import annotations

import signal
import sqlite3
import urllib.request
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import redis

from tailor.flows.recovery import ensure_store, partition_files
from tailor.flows.store import compact_store
from tailor.operators.redis.keys import control_key, updates_stream
from tests.conftest import free_port, snapshot_state, start_worker
from tests.flows.store_support import (
    DEADLINE_S,
    PREFIX,
    VISITORS,
    held_open,
    ok,
    produce,
    snaps,
    store_dir,
    tailor,
    wait_until,
    write_config,
)
from tests.flows.test_erasure import shopping

#: The default hybrid's parts snapshotted as bases (co-occurrence, FISM, category popularity,
#: trending, most popular), each one key of the `bases` step (`tailor.operators.bases`).
BASES = 5


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
    # left: the two stream positions, the control stream's, the models and their bases, and
    # the aging sweep (its users leave it with the TTL too, at its next boundary)
    assert snaps(store_dir(compacted_dir), "step_id NOT LIKE '%bases'") == 5
    assert snaps(store_dir(compacted_dir), "step_id LIKE '%bases'") == BASES
    got = come_back(redis_url, compacted_dir)
    live_users = 120  # each in the state step and the outputs step
    users_and_models = "step_id NOT LIKE '%quality%'"  # the quality windows: there if scored
    assert snaps(store_dir(compacted_dir), users_and_models) == 5 + BASES + 2 * live_users
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
