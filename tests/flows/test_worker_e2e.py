"""End to end: real data through `tailor produce` and `tailor run` into a real Redis.

These run the installed command in a subprocess, exactly as a user would, and then read
what landed in Redis: profiles, recommendations, segment memberships and notifications.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import threading
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis

from tailor.operators.redis.keys import (
    recs_key,
    segment_key,
    updates_channel,
    updates_stream,
    user_key,
)
from tests.conftest import snapshot_state

PREFIX = "e2e"
K = 10


def tailor(redis_url: str, config: Path, *args: str, timeout: float = 600, **extra_env: str) -> str:
    env = {**os.environ, "REDIS_URL": redis_url, **extra_env}
    done = subprocess.run(
        [sys.executable, "-m", "tailor.flows.cli", "--config", str(config), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "tailor.toml"
    path.write_text(
        f'[redis]\nprefix = "{PREFIX}"\n[metrics]\nport = 0\n[recs]\nk = {K}\n'
        "[source]\npartitions = 3\n"
        # These runs replay the same input more than once: each must start from scratch
        # (recovery has its own tests, tests/flows/test_recovery.py).
        f'[recovery]\nenabled = false\ndir = "{tmp_path / "recovery"}"\n'
    )
    return path


class Notices:
    """Collects pub/sub notices on a thread while the worker runs (a subscriber's view)."""

    def __init__(self, redis_url: str) -> None:
        self.client = redis.Redis.from_url(redis_url)
        self.pubsub = self.client.pubsub()
        self.pubsub.subscribe(updates_channel(PREFIX))
        assert self.pubsub.get_message(timeout=5)["type"] == "subscribe"  # type: ignore[index]
        self.received: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        while not self._stop.is_set():
            message = self.pubsub.get_message(timeout=0.2)
            if message and message["type"] == "message":
                self.received.append(orjson.loads(message["data"]))

    def finish(self) -> list[dict[str, Any]]:
        """Stop once the worker is done; a PING round-trip proves everything sent was read."""
        self._stop.set()
        self._thread.join()
        while (message := self.pubsub.get_message(timeout=1)) is not None:
            if message["type"] == "message":
                self.received.append(orjson.loads(message["data"]))
        self.pubsub.close()
        return self.received


@pytest.fixture
def notices(redis_url: str) -> Iterator[Notices]:
    listener = Notices(redis_url)
    yield listener
    listener._stop.set()


def profile(r: redis.Redis, user: str) -> dict[str, Any]:
    raw = r.hgetall(user_key(PREFIX, user))
    return {k.decode(): orjson.loads(v) for k, v in raw.items()}


def recs(r: redis.Redis, user: str) -> list[str]:
    stored = orjson.loads(r.get(recs_key(PREFIX, user)) or b"{}")
    return [entry["item_id"] for entry in stored["items"]]


def assert_memberships_match_profiles(r: redis.Redis, users: set[str]) -> None:
    members: dict[str, set[str]] = defaultdict(set)
    for key in r.scan_iter(match=f"{segment_key(PREFIX, '')}*"):
        segment = key.decode()[len(segment_key(PREFIX, "")) :]
        members[segment] = {m.decode() for m in r.smembers(key)}
    for user in users:
        stored = profile(r, user)
        expected = {stored["segment"]} - {""}  # "": no cluster yet (the segmenter's warm-up)
        expected |= {f"rfm:{stored['rfm_segment']}"} - {"rfm:"}  # "": never bought
        expected |= {f"rule:{name}" for name in stored["rule_segments"]}
        actual = {segment for segment, who in members.items() if user in who}
        assert actual == expected, user
    clustered = sum(1 for user in users if profile(r, user)["segment"])
    assert sum(len(m) for s, m in members.items() if s.startswith("cluster:")) == clustered


def read_movielens(data_dir: Path) -> dict[str, list[str]]:
    """Each user's movies in the order the stream replays them (timestamp, user, movie)."""
    with (data_dir / "movielens-latest-small" / "ratings.csv").open() as handle:
        rows = sorted(
            (int(row["timestamp"]), int(row["userId"]), int(row["movieId"]))
            for row in csv.DictReader(handle)
        )
    history: dict[str, list[str]] = defaultdict(list)
    for _, user, movie in rows:
        history[str(user)].append(str(movie))
    return history


def test_movielens_through_the_worker(
    data_dir: Path, redis_url: str, r: redis.Redis, config_file: Path, notices: Notices
) -> None:
    ratings = data_dir / "movielens-latest-small" / "ratings.csv"
    out = tailor(redis_url, config_file, "produce", str(ratings), "--no-progress")
    assert "published 100836 events" in out
    tailor(redis_url, config_file, "run", "--until-drained")
    history = read_movielens(data_dir)
    for user, movies in history.items():
        stored = profile(r, user)
        assert stored["version"] == len(movies), user
        items = recs(r, user)
        assert len(items) == K == len(set(items)), user
        assert not set(items) & set(movies[-20:]), user  # recent history is excluded
    assert_memberships_match_profiles(r, set(history))
    received = notices.finish()
    assert {n["user_id"] for n in received} == set(history)
    assert r.xlen(updates_stream(PREFIX)) >= len(history)
    assert r.exists(f"{PREFIX}:deadletter") == 0


def events_by_user(path: Path, limit: int | None = None) -> dict[str, list[dict[str, Any]]]:
    """The canonical events a dataset file gives, per user (from the adapter `produce` uses)."""
    from itertools import islice

    from tailor.operators.replay.adapters import read_payloads

    users: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for payload in islice(read_payloads(path), limit):
        event = orjson.loads(payload)
        users[str(event["user_id"])].append(event)
    return users


def recently_bought(events: list[dict[str, Any]], keep: int = 200) -> set[str]:
    """The items the worker promises to exclude: the `state.max_purchased` most recent."""
    order: dict[str, None] = {}
    for event in events:
        if event["type"] == "purchase" and "item_id" in event:
            order.pop(str(event["item_id"]), None)
            order[str(event["item_id"])] = None
    return set(list(order)[-keep:])


@pytest.mark.parametrize(
    ("dataset", "limit", "has_items"),
    [
        ("cdnow/cdnow_master.csv", 20_000, False),
        ("online-retail/online_retail.csv.gz", 40_000, True),
        ("otto-sample/train_events.csv", None, True),
    ],
)
def test_purchase_datasets_through_the_worker(
    data_dir: Path,
    redis_url: str,
    r: redis.Redis,
    config_file: Path,
    dataset: str,
    limit: int | None,
    has_items: bool,
) -> None:
    """Every user gets a profile counting all their events; nothing bought is recommended."""
    path = data_dir / dataset
    extra = ["--limit", str(limit)] if limit else []
    tailor(redis_url, config_file, "produce", str(path), "--no-progress", *extra)
    tailor(redis_url, config_file, "run", "--until-drained")
    users = events_by_user(path, limit)
    for user, events in users.items():
        stored = profile(r, user)
        assert stored["version"] == len(events), user
        purchases = sum(1 for e in events if e["type"] == "purchase")
        assert stored["features"]["purchases_total"] == purchases, user
        items = recs(r, user)
        bought = recently_bought(events)
        if has_items:
            assert len(items) == K == len(set(items)), user
        assert not bought & set(items), user
    assert_memberships_match_profiles(r, set(users))


def test_otto_purchases_are_never_recommended(
    data_dir: Path, redis_url: str, r: redis.Redis, config_file: Path
) -> None:
    events = data_dir / "otto-sample" / "train_events.csv"
    tailor(redis_url, config_file, "produce", str(events), "--no-progress")
    tailor(redis_url, config_file, "run", "--until-drained")
    bought: dict[str, set[str]] = defaultdict(set)
    with events.open() as handle:
        for row in csv.DictReader(handle):
            if row["type"] == "orders":
                bought[row["session"]].add(row["aid"])
    assert len(bought) >= 3
    for user, items in bought.items():
        assert len(recs(r, user)) == K
        assert not items & set(recs(r, user)), user
        assert profile(r, user)["features"]["purchases_total"] >= 1


def test_replay_of_the_sample_matches_produce_then_run(
    redis_url: str, r: redis.Redis, config_file: Path, tmp_path: Path
) -> None:
    """A replay gives byte-identical Redis state every time, and so does streaming the same
    file through one partition (one partition = one order, as with a Kafka partition)."""
    from tailor.flows.sample import write_jsonl

    sample = tmp_path / "sample.jsonl"
    write_jsonl(sample, users=150, seed=11)
    tailor(redis_url, config_file, "run", "--replay", str(sample))
    replayed = snapshot_state(r, PREFIX)
    r.flushall()
    tailor(redis_url, config_file, "run", "--replay", str(sample))
    assert snapshot_state(r, PREFIX) == replayed
    r.flushall()
    one = {"TAILOR_SOURCE_PARTITIONS": "1"}
    tailor(redis_url, config_file, "produce", str(sample), "--no-progress", **one)
    tailor(redis_url, config_file, "run", "--until-drained", **one)
    streamed = snapshot_state(r, PREFIX)
    assert replayed == streamed
    assert sum(1 for key in replayed if key.startswith(f"{PREFIX}:user:")) == 150
