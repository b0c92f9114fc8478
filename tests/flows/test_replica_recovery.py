"""Crash recovery with two workers: `tailor run` (2 worker threads, a model replica on each)
killed with SIGKILL at random points and restarted on the same store leaves every user's
features, segments, RFM tier and rule segments as one uninterrupted 2-worker run does, and
every profile counts each of its user's events once.

Recommendation lists are not compared: each replica learns the other's batches in the order
they arrive, which depends on timing (docs/design/scale-out.md, step 5 as built).
Same input as `test_recovery` (MovieLens with bad entries, one stream partition).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from tailor.flows.recovery import partition_files
from tests.conftest import RedisServer
from tests.flows.test_recovery import (
    PREFIX,
    events_per_user,
    kill_at_random_points,
    publish,
    tailor,
    versions,
)

KILLS = 3
FIELDS = ("version", "features", "segment", "segment_name", "rfm_segment", "rule_segments")


def write_config(tmp_path: Path, store: Path) -> Path:
    """As `test_recovery`'s, with two workers and a store of two partitions."""
    path = tmp_path / "tailor.toml"
    path.write_text(
        f'[redis]\nprefix = "{PREFIX}"\n[metrics]\nport = 0\n'
        "[source]\npartitions = 1\nbatch_size = 100\n"
        f"[segments]\nreorder_s = {30 * 86400}\n"
        "[cluster]\nworkers_per_process = 2\n"
        f'[recovery]\nenabled = true\ndir = "{store}"\nsnapshot_interval_s = 0.2\n'
        "partitions = 2\n"
    )
    return path


def profiles(r: redis.Redis) -> dict[str, tuple[bytes | None, ...]]:
    """Every user's compared fields as stored."""
    out = {}
    for key in r.scan_iter(match=f"{PREFIX}:user:*", count=1000):
        out[key.decode()] = tuple(r.hmget(key, list(FIELDS)))
    return out


@pytest.fixture(scope="module")
def reference(
    redis_server: RedisServer, data_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[bytes | None, ...]]:
    """One uninterrupted 2-worker run."""
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    tmp = tmp_path_factory.mktemp("reference2")
    publish(client, data_dir)
    tailor(redis_server.url, write_config(tmp, tmp / "store"), "run", "--until-drained")
    found = profiles(client)
    client.flushall()
    client.close()
    return found


def test_two_workers_sigkill_then_restart_keep_features_and_segments(
    reference: dict[str, tuple[bytes | None, ...]],
    redis_url: str,
    r: redis.Redis,
    data_dir: Path,
    tmp_path: Path,
) -> None:
    store = tmp_path / "store"
    config = write_config(tmp_path, store)
    publish(r, data_dir)
    log = tmp_path / "worker.log"
    kill_at_random_points(redis_url, r, config, log, seed=5, kills=KILLS)
    assert len(partition_files(store / PREFIX)) == 2
    tailor(redis_url, config, "run", "--until-drained")

    got = profiles(r)
    assert versions(r) == dict(events_per_user(data_dir))
    differ = sorted(user for user in reference if got.get(user) != reference[user])
    assert not differ, differ[:10]
    assert got == reference
