"""Crash recovery end to end: `tailor run` killed with SIGKILL at random points, or stopped
with SIGTERM, then restarted on the same recovery store, leaves Redis byte for byte as one
uninterrupted run does, and every profile counts each of its user's events exactly once.
What is written once per input stays so: each bad entry has one dead letter, and no update
notice repeats (`tailor.operators.redis.deadletters`, `tailor.operators.redis.scripts`).

Real MovieLens ratings with bad entries mixed in (broken JSON, not UTF-8, a missing field,
an unknown type, late events) through one stream partition (one input order), real Redis, the
real command in a subprocess. Kill points are counted in update notices, never in sleeps.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from itertools import islice
from pathlib import Path
from typing import Any, NamedTuple, cast

import orjson
import pytest
import redis

from tailor.flows.config import ConfigError, load_config
from tailor.flows.recovery import describe, ensure_store, partition_files, recovery_settings
from tailor.operators.redis.keys import (
    deadletter_index,
    deadletter_stream,
    stream_key,
    updates_channel,
    updates_stream,
)
from tailor.operators.replay.adapters import read_payloads
from tests.conftest import RedisServer, snapshot_state, start_worker

PREFIX = "rec"
LIMIT = 15_000
#: One bad entry after every BAD_EVERY-th rating: 1,875 dead letters in the run.
BAD_EVERY = 8
KILLS = 6
#: How long a worker may take to send the awaited notices or to finish: a hang, not a timing.
DEADLINE_S = 120.0


def ratings(data_dir: Path) -> Path:
    return data_dir / "movielens-latest-small" / "ratings.csv"


def write_config(tmp_path: Path, store: Path) -> Path:
    """One partition and small source batches: many batches and epochs in 15,000 events.

    Segments settle 30 days of event time after an output is sent, so many outputs go out
    provisional and some are corrected: replays meet corrections, and outputs provisional in
    one run and settled at once in another."""
    path = tmp_path / "tailor.toml"
    path.write_text(
        f'[redis]\nprefix = "{PREFIX}"\n[metrics]\nport = 0\n'
        "[source]\npartitions = 1\nbatch_size = 100\n"
        f"[segments]\nreorder_s = {30 * 86400}\n"
        f'[recovery]\nenabled = true\ndir = "{store}"\nsnapshot_interval_s = 0.2\n'
    )
    return path


def env(redis_url: str) -> dict[str, str]:
    return {**os.environ, "REDIS_URL": redis_url, "PYTHONHASHSEED": "0"}


def tailor(redis_url: str, config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "tailor.flows.cli", "--config", str(config), *args],
        env=env(redis_url),
        capture_output=True,
        text=True,
        timeout=DEADLINE_S,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


class Subscription:
    """The updates channel as a subscriber sees it, opened before the worker starts."""

    def __init__(self, redis_url: str) -> None:
        self.client = redis.Redis.from_url(redis_url)
        self.pubsub = self.client.pubsub()
        self.pubsub.subscribe(updates_channel(PREFIX))
        message = self.pubsub.get_message(timeout=5)
        assert message is not None and message["type"] == "subscribe"

    def wait_for(self, target: int, worker: subprocess.Popen[bytes], seen: dict[str, int]) -> int:
        """Read notices until the events they reflect reach `target` (after at least one
        notice), or the worker exited; returns that progress.

        `seen` holds each user's version so far (from Redis at start) and is updated: in one
        partition, the sum of the versions is the number of input events processed.
        """
        notices = 0
        deadline = time.monotonic() + DEADLINE_S  # against a hang only, not to synchronise
        while time.monotonic() < deadline:
            progress = sum(seen.values())
            if notices and progress >= target:
                return progress
            message = self.pubsub.get_message(timeout=0.5)
            if message is None:
                if worker.poll() is not None:
                    return progress
            elif message["type"] == "message":
                notice = orjson.loads(message["data"])
                user = str(notice["user_id"])
                seen[user] = max(seen.get(user, 0), int(notice["version"]))
                notices += 1
        raise AssertionError(f"progress {sum(seen.values())} of {target} within {DEADLINE_S} s")

    def close(self) -> None:
        self.pubsub.close()
        self.client.close()


def differences(got: dict[str, Any], want: dict[str, Any]) -> list[str]:
    """The keys that differ, with the hash fields that differ: what a failure must show."""
    diffs: list[str] = []
    for key in sorted(got.keys() | want.keys()):
        a, b = got.get(key), want.get(key)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            fields = sorted(f.decode() for f in a.keys() | b.keys() if a.get(f) != b.get(f))
            diffs.append(f"{key} fields {fields}")
        else:
            diffs.append(f"{key}: {a!r:.200} != {b!r:.200}")
    return diffs


def events_per_user(data_dir: Path) -> Counter[str]:
    """What each profile's version must be: the user's events among the first LIMIT."""
    payloads = islice(read_payloads(ratings(data_dir), "movielens"), LIMIT)
    return Counter(str(orjson.loads(p)["user_id"]) for p in payloads)


def versions(r: redis.Redis) -> dict[str, int]:
    found: dict[str, int] = {}
    for key in r.scan_iter(match=f"{PREFIX}:user:*"):
        user = key.decode().removeprefix(f"{PREFIX}:user:")
        found[user] = int(orjson.loads(r.hget(key, "version") or b"0"))
    return found


def bad_entry(n: int, rating: bytes) -> bytes:
    """The n-th bad entry, written after `rating`: one of five kinds of refusal."""
    kind = n % 5
    if kind == 0:
        return b'{"event_id": "bad-%d", "user_id": "1", "ty' % n
    if kind == 1:
        return b"\xff\xfe bad %d" % n
    if kind == 2:
        return orjson.dumps({"event_id": f"bad-{n}", "type": "product_view", "ts": 9e8})
    obj = orjson.loads(rating)
    if kind == 3:
        return orjson.dumps({**obj, "event_id": f"bad-{n}", "type": "teleport"})
    # the user's own rating an hour back in event time: behind their watermark, so late
    return orjson.dumps({**obj, "event_id": f"late-{n}", "ts": obj["ts"] - 3600})


def mixed_input(data_dir: Path) -> list[bytes]:
    """The first LIMIT ratings with a bad entry after every BAD_EVERY-th."""
    payloads: list[bytes] = []
    for n, rating in enumerate(islice(read_payloads(ratings(data_dir), "movielens"), LIMIT)):
        payloads.append(rating)
        if n % BAD_EVERY == BAD_EVERY - 1:
            payloads.append(bad_entry(n // BAD_EVERY, rating))
    return payloads


def publish(r: redis.Redis, data_dir: Path) -> None:
    pipe = r.pipeline(transaction=False)
    for payload in mixed_input(data_dir):
        pipe.xadd(stream_key(PREFIX, 0), {b"payload": payload})
    pipe.execute()


def dead_letters(r: redis.Redis) -> list[dict[bytes, bytes]]:
    """The dead letters' fields in a canonical order, each offset (an input entry id, which
    is wall-clock) replaced by the input entry's position, so two runs compare."""
    entries = cast(list[tuple[bytes, dict[bytes, bytes]]], r.xrange(deadletter_stream(PREFIX)))
    inputs = cast(list[tuple[bytes, Any]], r.xrange(stream_key(PREFIX, 0)))
    position = {entry_id: b"%d" % n for n, (entry_id, _) in enumerate(inputs)}
    letters = [
        {**fields, b"offset": position.get(fields[b"offset"], fields[b"offset"])}
        for _, fields in entries
    ]
    return sorted(letters, key=lambda f: sorted(f.items()))


def notice_keys(r: redis.Redis) -> Counter[tuple[str, int, float, bool]]:
    """How many stored notices carry each (user_id, version, aged_to, correction): a notice's
    identity (README, Notices; aged_to is 0 on an event's)."""
    entries = cast(list[tuple[bytes, dict[bytes, bytes]]], r.xrange(updates_stream(PREFIX)))
    keys: Counter[tuple[str, int, float, bool]] = Counter()
    for _, fields in entries:
        n = orjson.loads(fields[b"notice"])
        keys[(n["user_id"], n["version"], n.get("aged_to", 0.0), n.get("correction", False))] += 1
    return keys


def repeated_notices(r: redis.Redis) -> list[tuple[str, int, float, bool]]:
    """The notice identities that more than one stored notice carries."""
    return [key for key, count in notice_keys(r).items() if count > 1]


class Reference(NamedTuple):
    """What one uninterrupted run leaves: the state, and the dead letters."""

    state: dict[str, Any]
    letters: list[dict[bytes, bytes]]
    corrections: int


@pytest.fixture(scope="module")
def reference_run(
    redis_server: RedisServer, data_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Reference:
    """One uninterrupted run (recovery on, never interrupted)."""
    url = redis_server.url
    client = redis.Redis.from_url(url)
    client.flushall()
    tmp = tmp_path_factory.mktemp("reference")
    config = write_config(tmp, tmp / "store")
    publish(client, data_dir)
    tailor(url, config, "run", "--until-drained")
    assert not repeated_notices(client)  # a correction is told apart from its first notice
    corrections = sum(1 for *_, correction in notice_keys(client) if correction)
    found = Reference(snapshot_state(client, PREFIX), dead_letters(client), corrections)
    client.flushall()
    client.close()
    return found


@pytest.fixture(scope="module")
def reference(reference_run: Reference) -> dict[str, Any]:
    """The Redis state after one uninterrupted run."""
    return reference_run.state


def test_reference_run_counts_every_event_once(reference_run: Reference, data_dir: Path) -> None:
    expected = events_per_user(data_dir)
    reference = reference_run.state
    users = {k.removeprefix(f"{PREFIX}:user:") for k in reference if ":user:" in k}
    assert users == set(expected)
    for user, count in expected.items():
        assert int(reference[f"{PREFIX}:user:{user}"][b"version"]) == count, user
    assert reference_run.corrections > 0  # the settling the kill test must survive happens
    reasons = Counter(letter[b"reason"].decode() for letter in reference_run.letters)
    per_kind = LIMIT // BAD_EVERY // 5
    assert reasons == dict.fromkeys(
        ["malformed_json", "not_utf8", "missing_field", "unknown_type", "late"], per_kind
    )


def kill_at_random_points(
    redis_url: str, r: redis.Redis, config: Path, log: Path, seed: int, kills: int = KILLS
) -> list[int]:
    """Start a worker and SIGKILL it once it has processed each of `kills` seeded targets (in
    input events processed; none in the last tenth, where a worker could finish first);
    returns where each kill landed, every one mid-stream, at or after its target."""
    targets = sorted(random.Random(seed).sample(range(1, LIMIT * 9 // 10), kills))
    progress: list[int] = []
    for target in targets:
        sub = Subscription(redis_url)
        worker = start_worker(redis_url, config, log, "--until-drained")
        reached = sub.wait_for(target, worker, versions(r))
        sub.close()
        assert worker.poll() is None, f"finished before {target}: " + log.read_text()[-3000:]
        worker.send_signal(signal.SIGKILL)
        assert worker.wait(timeout=DEADLINE_S) == -signal.SIGKILL
        progress.append(reached)
    assert all(t <= p < LIMIT for t, p in zip(targets, progress, strict=True)), progress
    return progress


def test_sigkill_at_random_points_then_restart_gives_the_same_bytes(
    reference_run: Reference, redis_url: str, r: redis.Redis, data_dir: Path, tmp_path: Path
) -> None:
    """What a killed worker wrote after its last snapshot is written again on restart: the
    output must be replay-safe, dead letters and notices included. (That the state itself
    resumes is shown by the SIGTERM test, whose restart sees only the rest of the stream.)"""
    store = tmp_path / "store"
    config = write_config(tmp_path, store)
    publish(r, data_dir)
    log = tmp_path / "worker.log"
    kill_at_random_points(redis_url, r, config, log, seed=2)
    assert partition_files(store / PREFIX), "the first start created the store (per prefix)"
    tailor(redis_url, config, "run", "--until-drained")

    got = snapshot_state(r, PREFIX)
    assert not differences(got, reference_run.state)
    assert got == reference_run.state
    assert versions(r) == dict(events_per_user(data_dir))
    letters = dead_letters(r)
    assert len(letters) == len(reference_run.letters)  # none written twice, none lost
    assert letters == reference_run.letters
    assert r.zcard(deadletter_index(PREFIX)) == len(letters)
    assert not repeated_notices(r)


def test_sigterm_then_restart_processes_only_the_rest(
    reference: dict[str, Any], redis_url: str, r: redis.Redis, data_dir: Path, tmp_path: Path
) -> None:
    config = write_config(tmp_path, tmp_path / "store")
    publish(r, data_dir)
    log = tmp_path / "worker.log"
    sub = Subscription(redis_url)
    worker = start_worker(redis_url, config, log)  # long-lived: only the signal ends it
    sub.wait_for(random.Random(2).randint(LIMIT // 10, LIMIT // 2), worker, {})
    sub.close()
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=DEADLINE_S) == 0, log.read_text()[-3000:]
    expected = events_per_user(data_dir)
    partial = versions(r)
    assert 0 < sum(partial.values()) < LIMIT  # stopped mid-stream, with work left
    assert all(partial[user] <= expected[user] for user in partial)
    # Retention trims what was consumed: only the recovered stream position can find the rest,
    # and only the recovered state gives the right versions from the rest alone.
    stream = stream_key(PREFIX, 0)
    processed = sum(partial.values())
    entries: Any = r.xrange(stream, count=processed)
    assert r.xdel(stream, *[entry_id for entry_id, _ in entries]) == processed

    done = tailor(redis_url, config, "run", "--until-drained")
    assert "resuming from" in done.stderr
    assert versions(r) == dict(expected)
    got = snapshot_state(r, PREFIX)
    assert not differences(got, reference)
    assert got == reference


def test_store_is_created_once_and_kept(tmp_path: Path) -> None:
    store = tmp_path / "a" / "store"
    assert ensure_store(store, 2) is True
    assert [p.name for p in partition_files(store)] == ["part-0.sqlite3", "part-1.sqlite3"]
    assert ensure_store(store, 3) is False  # an existing store keeps its partition count
    assert len(partition_files(store)) == 2
    assert [p.name for p in store.parent.iterdir()] == ["store"]  # no scratch left behind


def test_a_directory_holding_something_else_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a recovery store")
    with pytest.raises(ConfigError, match="not a recovery store"):
        ensure_store(tmp_path, 1)
    assert not partition_files(tmp_path)


def test_settings_follow_the_config(tmp_path: Path) -> None:
    config = load_config(env={}).with_value("recovery", "dir", str(tmp_path / "r"))
    settings = recovery_settings(config.with_value("recovery", "snapshot_interval_s", 0.5))
    assert settings is not None and settings.created
    assert settings.epoch_interval.total_seconds() == 0.5
    assert settings.store == (tmp_path / "r" / "tailor").resolve()  # one store per prefix
    assert "created" in describe(settings)
    again = recovery_settings(config)
    assert again is not None and not again.created
    assert "resuming from" in describe(again)
    assert recovery_settings(config.with_value("recovery", "enabled", False)) is None
