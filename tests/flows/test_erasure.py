"""Erasure end to end: `tailor forget` and `consent: false` leave nothing about the user in
Redis (state, profile, recommendations, memberships, notices, raw input, dead letters), and
leave every other user as it was."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import orjson
import pytest
import redis

from tailor.flows.config import SECRET_ENV
from tailor.flows.forget import forget
from tailor.operators.pseudonym import pseudonym
from tailor.operators.redis.keys import stream_key
from tailor.operators.redis.routing import partition_for
from tests.conftest import drain_worker

PREFIX = "erase"
BASE_TS = 1_700_000_000


def tailor(redis_url: str, config: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "tailor.flows.cli", "--config", str(config), *args],
        env={**os.environ, "REDIS_URL": redis_url},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def write_events(path: Path, events: list[dict[str, object]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    return path


def shopping(user: str, start: int, n: int = 6) -> list[dict[str, object]]:
    return [
        {
            "event_id": f"{user}-{i}",
            "user_id": user,
            "type": "product_view",
            "ts": BASE_TS + start + 60 * i,
            "item_id": f"item-{(start + i) % 9}",
            "category": "games",
            "device": "mobile",
        }
        for i in range(n)
    ]


def everything(r: redis.Redis) -> bytes:
    """Every key name and stored value under the prefix, streams included, as one blob."""
    parts: list[bytes] = []
    for key in sorted(r.scan_iter(match=f"{PREFIX}:*")):
        parts.append(key)
        kind = r.type(key)
        if kind == b"hash":
            parts += [k + b"=" + v for k, v in sorted(r.hgetall(key).items())]
        elif kind == b"set":
            parts += sorted(r.smembers(key))
        elif kind == b"stream":
            parts += [b"%r" % sorted(fields.items()) for _id, fields in r.xrange(key)]
        elif kind == b"string":
            parts.append(r.get(key) or b"")
    return b"\n".join(parts)


def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "tailor.toml"
    path.write_text(
        f'[redis]\nprefix = "{PREFIX}"\n[metrics]\nport = 0\n[source]\npartitions = 2\n'
        f'[recovery]\nenabled = false\ndir = "{tmp_path / "recovery"}"\n'
        "[segments]\nwarmup = 1\n"  # a handful of users: segments from the first one on
    )
    return path


def test_forget_erases_the_user_everywhere(redis_url: str, r: redis.Redis, tmp_path: Path) -> None:
    config = config_file(tmp_path)
    bad = {"event_id": "alice-bad", "user_id": "alice", "type": "teleport", "ts": BASE_TS}
    events = shopping("alice", 0) + shopping("bob", 30) + shopping("carol", 90) + [bad]
    tailor(
        redis_url,
        config,
        "produce",
        str(write_events(tmp_path / "e.jsonl", events)),
        "--no-progress",
    )
    tailor(redis_url, config, "run", "--until-drained")
    assert b"alice" in everything(r)  # profile, memberships, notices, input, dead letter
    bob_before = r.hgetall(f"{PREFIX}:user:bob")

    out = tailor(redis_url, config, "forget", "alice")
    assert "deleted 7 input events and 1 dead letters" in out
    tailor(redis_url, config, "run", "--until-drained")

    assert b"alice" not in everything(r)
    assert r.hgetall(f"{PREFIX}:user:bob") == bob_before
    assert r.sismember(f"{PREFIX}:segment:{orjson.loads(bob_before[b'segment'])}", "bob")


def test_consent_false_erases_and_stops_processing(
    redis_url: str, r: redis.Redis, tmp_path: Path
) -> None:
    config = config_file(tmp_path)
    withdraw = {
        "event_id": "dave-no",
        "user_id": "dave",
        "type": "page_view",
        "ts": BASE_TS + 400,
        "consent": False,
    }
    after = {"event_id": "dave-later", "user_id": "dave", "type": "page_view", "ts": BASE_TS + 500}
    events = shopping("dave", 0) + shopping("erin", 10) + [withdraw, after]
    tailor(
        redis_url,
        config,
        "produce",
        str(write_events(tmp_path / "e.jsonl", events)),
        "--no-progress",
    )
    tailor(redis_url, config, "run", "--until-drained")

    assert not r.exists(f"{PREFIX}:user:dave", f"{PREFIX}:recs:dave")
    derived = [k for k in r.scan_iter(match=f"{PREFIX}:*") if b":events:" not in k]
    for key in derived:
        kind = r.type(key)
        if kind == b"set":
            assert not r.sismember(key, "dave"), key
        elif kind == b"stream":
            assert b"dave" not in b"".join(v for _, f in r.xrange(key) for v in f.values()), key
    assert r.hget(f"{PREFIX}:user:erin", "version") == b"6"


def test_opt_out_set_is_honoured_by_a_fresh_worker(
    redis_url: str, r: redis.Redis, tmp_path: Path
) -> None:
    config = config_file(tmp_path)
    tailor(redis_url, config, "forget", "frank", "--opt-out")
    events = shopping("frank", 0) + shopping("gina", 5)
    tailor(
        redis_url,
        config,
        "produce",
        str(write_events(tmp_path / "e.jsonl", events)),
        "--no-progress",
    )
    tailor(redis_url, config, "run", "--until-drained")
    assert not r.exists(f"{PREFIX}:user:frank")
    assert r.sismember(f"{PREFIX}:optout", "frank")
    assert r.hget(f"{PREFIX}:user:gina", "version") == b"6"


def raw_users(r: redis.Redis, partitions: int) -> Counter[str]:
    """Events per user id left in the input streams."""
    return Counter(
        orjson.loads(fields[b"payload"])["user_id"]
        for p in range(partitions)
        for _id, fields in r.xrange(stream_key(PREFIX, p))
    )


def publish(r: redis.Redis, events: list[dict[str, object]], partitions: int) -> None:
    for event in events:
        key = stream_key(PREFIX, partition_for(str(event["user_id"]), partitions))
        r.xadd(key, {"payload": orjson.dumps(event)})


@pytest.mark.parametrize("pseudonymize", [False, True])
def test_an_opted_out_users_new_raw_events_are_deleted_as_consumed(
    redis_url: str, r: redis.Redis, monkeypatch: pytest.MonkeyPatch, pseudonymize: bool
) -> None:
    """The streams hold raw ids even with pseudonyms: entries are deleted by entry id."""
    secret = b"opt-out-secret" if pseudonymize else None
    monkeypatch.setenv(SECRET_ENV, "opt-out-secret")
    settings = {"privacy__pseudonymize": pseudonymize, "segments__warmup": 1}
    forget(r, PREFIX, 2, "frank", opt_out=True, secret=secret)
    publish(r, shopping("frank", 0) + shopping("gina", 5) + shopping("hal", 7), partitions=2)
    drain_worker(redis_url, PREFIX, 2, **settings)
    assert raw_users(r, 2) == {"gina": 6, "hal": 6}

    # a second run (a fresh worker: the opt-out comes back from the opt-out set) does it again
    publish(r, shopping("frank", 600, n=3) + shopping("gina", 600, n=2), partitions=2)
    drain_worker(redis_url, PREFIX, 2, **settings)
    assert raw_users(r, 2) == {"gina": 8, "hal": 6}
    stored = pseudonym(secret, "frank") if secret else "frank"
    assert not r.exists(f"{PREFIX}:user:{stored}")


def test_forget_finds_the_raw_input_whichever_rule_routed_it(r: redis.Redis) -> None:
    """With 2 workers, `tailor produce` routes by the worker rule, an external producer may
    use crc32 alone: the user's raw entries are deleted from both partitions."""
    user = next(
        f"walker-{n}"
        for n in range(100)
        if partition_for(f"walker-{n}", 4) != partition_for(f"walker-{n}", 4, 2)
    )
    for partition in (partition_for(user, 4), partition_for(user, 4, 2)):
        r.xadd(stream_key(PREFIX, partition), {"payload": orjson.dumps({"user_id": user})})
    r.xadd(stream_key(PREFIX, 0), {"payload": orjson.dumps({"user_id": "someone-else"})})
    counts = forget(r, PREFIX, 4, user, workers=2)
    assert counts["input_entries"] == 2
    left = [r.xrange(stream_key(PREFIX, p)) for p in range(4)]
    assert [fields for stream in left for _, fields in stream] == [
        {b"payload": orjson.dumps({"user_id": "someone-else"})}
    ]
