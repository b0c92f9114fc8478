"""With two workers every replica of the models learns every user's interactions, so an
erasure must reach every replica: after `tailor forget`, the user's id is in no snapshot of
any key (per-user steps, both replicas, the quality windows, the sources' positions)."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import redis

from tailor.flows.recovery import partition_files
from tailor.operators.redis.keys import user_key
from tailor.operators.redis.routing import replica_keys
from tests.flows.test_erasure_recovery import BASE_TS, first_events
from tests.flows.test_store import PREFIX, ok, produce, store_dir, tailor, write_config

WORKERS = 2


def events() -> list[dict[str, object]]:
    """Alice, bob and carol view items; alice and bob also buy (the RFM sample, which every
    replica learns, holds buyers' ids)."""
    buys = [
        {
            "event_id": f"{u}-buy",
            "user_id": u,
            "type": "purchase",
            "ts": BASE_TS + 900 + n,
            "item_id": "shared-1",
            "price": 20.0,
            "category": "games",
        }
        for n, u in enumerate(("alice", "bob"))
    ]
    return first_events() + buys


def keys_holding(store: Path, needle: bytes) -> set[tuple[str, str]]:
    """(step id, state key) of every snapshot row in the store whose bytes hold `needle`."""
    found: set[tuple[str, str]] = set()
    for path in partition_files(store):
        with closing(sqlite3.connect(path)) as conn:
            rows = conn.execute("SELECT step_id, state_key, ser_change FROM snaps").fetchall()
        found |= {(step, key) for step, key, blob in rows if blob is not None and needle in blob}
    return found


def test_an_erased_user_is_in_no_snapshot_of_any_replica(
    redis_url: str, r: redis.Redis, tmp_path: Path
) -> None:
    config = write_config(
        tmp_path,
        "tailor.toml",
        cluster={"workers_per_process": WORKERS},
        recovery={"partitions": WORKERS},
    )
    produce(redis_url, config, events(), tmp_path / "first.jsonl")
    ok(tailor(redis_url, config, "run", "--until-drained"))
    store = store_dir(tmp_path)
    replicas = {("tailor.models.replica", key) for key in replica_keys(WORKERS)}
    assert replicas <= keys_holding(store, b"alice")  # both copies learned her
    assert r.exists(user_key(PREFIX, "alice"))

    ok(tailor(redis_url, config, "forget", "alice"))
    ok(tailor(redis_url, config, "run", "--until-drained"))
    assert r.exists(user_key(PREFIX, "alice")) == 0
    assert keys_holding(store, b"alice") == set()
    assert replicas <= keys_holding(store, b"bob")  # the others are still there
