"""An erasure survives a crash: a worker killed after it applied `tailor forget` and before
the epoch that applied it was snapshotted resumes with the user's state from before the
erasure, and must find the request again (`tailor.operators.redis.control.ControlSource`).

Real `tailor` commands in subprocesses, real Redis, a real recovery store. The kill lands
inside an epoch by construction, not by timing: the snapshot interval is far longer than the
worker needs to apply the erasure, and the test checks it killed the worker before the
interval elapsed.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import orjson
import redis

from tailor.flows.rescale import replica_models
from tailor.operators.models import ModelsState
from tailor.operators.redis.keys import control_key, user_key
from tailor.operators.redis.routing import replica_keys
from tests.conftest import start_worker
from tests.flows.test_store import (
    DEADLINE_S,
    PREFIX,
    ok,
    on_disk,
    produce,
    store_dir,
    tailor,
    wait_until,
    write_config,
)

#: Long enough that no epoch ends between the worker's start and the kill.
SNAPSHOT_INTERVAL_S = 60.0
BASE_TS = 1_700_000_000
#: Items only alice viewed: what the co-occurrence model learnt from her alone.
HER_ITEMS = [f"her-item-{i}" for i in range(6)]


def view(event_id: str, user: str, item: str, ts: int) -> dict[str, object]:
    return {
        "event_id": event_id,
        "user_id": user,
        "type": "product_view",
        "ts": ts,
        "item_id": item,
        "category": "games",
    }


def first_events() -> list[dict[str, object]]:
    """Alice views each of her items once (so her history holds every pair she made, and
    the models can take them all back); bob and carol view shared ones."""
    events = [
        view(f"alice-{n}", "alice", item, BASE_TS + 60 * n) for n, item in enumerate(HER_ITEMS)
    ]
    for user, offset in (("bob", 7), ("carol", 11)):
        events += [
            view(f"{user}-{n}", user, f"shared-{n % 3}", BASE_TS + offset + 60 * n)
            for n in range(6)
        ]
    return events


def version(r: redis.Redis, user: str) -> int | None:
    raw = r.hget(user_key(PREFIX, user), "version")
    return None if raw is None else int(orjson.loads(raw))


def models_state(store: Path) -> ModelsState:
    """The models step's state as a resume of the store would load it (its bases read)."""
    return replica_models(store)[replica_keys(1)[0]]


def paired_with(state: ModelsState, item: str) -> set[str]:
    """The items the co-occurrence model saw viewed together with `item`."""
    cooc = state.recs.models["hybrid"].components["cooc"].cooc
    return set(cooc.neighbors(item))


def test_an_erasure_applied_then_killed_before_its_snapshot_is_not_lost(
    redis_url: str, r: redis.Redis, tmp_path: Path
) -> None:
    config = write_config(
        tmp_path,
        "tailor.toml",
        source={"partitions": 1},
        recovery={"snapshot_interval_s": SNAPSHOT_INTERVAL_S, "partitions": 1},
    )
    produce(redis_url, config, first_events(), tmp_path / "first.jsonl")
    # Phase one ends cleanly: alice's state, and the models' part of her, are committed.
    ok(tailor(redis_url, config, "run", "--until-drained"))
    assert version(r, "alice") == len(HER_ITEMS)
    assert on_disk(store_dir(tmp_path), b"alice-0")

    log = tmp_path / "worker.log"
    worker = start_worker(redis_url, config, log)
    started = time.monotonic()
    try:
        ok(tailor(redis_url, config, "forget", "alice"))
        wait_until(lambda: r.exists(user_key(PREFIX, "alice")) == 0, "the erasure applied")
        assert worker.poll() is None, log.read_text()[-3000:]
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=DEADLINE_S)
    killed_after = time.monotonic() - started
    # no epoch of this run can have been committed: the kill landed inside the first one
    assert killed_after < SNAPSHOT_INTERVAL_S, killed_after

    # The restart resumes from phase one's snapshot, from before the erasure.
    ok(tailor(redis_url, config, "run", "--until-drained"))
    assert r.exists(user_key(PREFIX, "alice")) == 0

    # Alice comes back with one event; bob views one of her old items.
    back = [
        view("alice-new", "alice", "shared-0", BASE_TS + 7200),
        view("bob-new", "bob", HER_ITEMS[0], BASE_TS + 7260),
    ]
    produce(redis_url, config, back, tmp_path / "back.jsonl")
    assert "resuming from" in ok(tailor(redis_url, config, "run", "--until-drained"))

    assert version(r, "alice") == 1  # only her new event: her history did not come back
    assert r.xlen(control_key(PREFIX)) == 0  # the request left once durable (at this start)
    store = store_dir(tmp_path)
    # the models forgot her pairs of items; bob's new view of one of them is there
    pairs = paired_with(models_state(store), HER_ITEMS[0])
    assert pairs and not pairs & set(HER_ITEMS), pairs
    old_ids = [f"alice-{n}".encode() for n in range(len(HER_ITEMS))]
    assert not [i for i in old_ids if on_disk(store, i)]  # no state from before the erasure
    assert on_disk(store, b"alice-new") and on_disk(store, b"bob-new")
