"""Pseudonymous ids end to end: with `privacy.pseudonymize`, no raw user id reaches Redis,
and `tailor inspect` still finds a user by the id the shop knows."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import redis

from tailor.flows.config import SECRET_ENV, ConfigError
from tailor.flows.forget import forget
from tailor.flows.sample import write_jsonl
from tailor.operators.pseudonym import id_mode, pseudonym
from tailor.operators.redis.keys import META_IDS, control_key, meta_key, stream_key, user_key
from tailor.operators.redis.routing import partition_for
from tests.conftest import drain_worker

PREFIX = "private"
SECRET = "not-a-real-secret"


def tailor(env: dict[str, str], config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tailor.flows.cli", "--config", str(config), *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def tailor_as_operator(
    redis_url: str, config: Path, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    """A CLI command run by someone who has the Redis URL but not the worker's pseudonym key
    (unless `env` gives it), whatever this test process's environment holds."""
    own = {k: v for k, v in os.environ.items() if k != SECRET_ENV}
    return subprocess.run(
        [sys.executable, "-m", "tailor.flows.cli", "--config", str(config), *args],
        env={**own, "REDIS_URL": redis_url, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def everything_stored(r: redis.Redis) -> bytes:
    """Every key and value under the prefix except the dead letters (raw input by design)."""
    parts: list[bytes] = []
    for key in r.scan_iter(match=f"{PREFIX}:*"):
        if key.endswith(b":deadletter") or b":events:" in key:
            continue
        parts.append(key)
        kind = r.type(key)
        if kind == b"hash":
            parts += [b"%s=%s" % kv for kv in r.hgetall(key).items()]
        elif kind == b"set":
            parts += sorted(r.smembers(key))
        elif kind == b"stream":
            parts += [
                orjson.dumps({k.decode(): v.decode() for k, v in f.items()})
                for _, f in r.xrange(key)
            ]
        else:
            parts.append(r.get(key) or b"")
    return b"\n".join(parts)


def test_no_raw_user_id_is_stored(redis_url: str, r: redis.Redis, tmp_path: Path) -> None:
    config = tmp_path / "tailor.toml"
    config.write_text(
        f'[redis]\nprefix = "{PREFIX}"\n[metrics]\nport = 0\n[privacy]\npseudonymize = true\n'
        f'[recovery]\nenabled = false\ndir = "{tmp_path / "recovery"}"\n'
        "[segments]\nwarmup = 1\n"  # a handful of users: segments from the first one on
    )
    sample = tmp_path / "sample.jsonl"
    write_jsonl(sample, users=40, seed=3)
    env = {"REDIS_URL": redis_url, "TAILOR_PSEUDONYM_SECRET": SECRET}
    assert tailor(env, config, "produce", str(sample), "--no-progress").returncode == 0
    done = tailor(env, config, "run", "--until-drained")
    assert done.returncode == 0, done.stderr[-2000:]

    stored = everything_stored(r)
    assert b"user-000" not in stored
    hidden = pseudonym(SECRET.encode(), "user-00007")
    assert r.exists(f"{PREFIX}:user:{hidden}")
    assert sum(1 for _ in r.scan_iter(match=f"{PREFIX}:user:*")) == 40

    found = tailor(env, config, "inspect", "user-00007")
    assert found.returncode == 0, found.stderr[-2000:]
    assert orjson.loads(found.stdout)["profile"]["segment"].startswith("cluster:")


def test_pseudonymize_without_a_secret_is_a_config_error(redis_url: str, tmp_path: Path) -> None:
    config = tmp_path / "tailor.toml"
    config.write_text(
        "[metrics]\nport = 0\n[privacy]\npseudonymize = true\n[recovery]\nenabled = false\n"
    )
    env = {"REDIS_URL": redis_url}
    os_env = {k: v for k, v in os.environ.items() if k != "TAILOR_PSEUDONYM_SECRET"}
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
        env={**os_env, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    assert "TAILOR_PSEUDONYM_SECRET" in done.stderr


def publish(r: redis.Redis, users: list[str], partitions: int = 2, n: int = 3) -> None:
    """`n` product views per user, each in its user's partition."""
    for user in users:
        for i in range(n):
            event = {
                "event_id": f"{user}-{i}",
                "user_id": user,
                "type": "product_view",
                "ts": 1_700_000_000 + 60 * i,
                "item_id": f"item-{i}",
            }
            key = stream_key(PREFIX, partition_for(user, partitions))
            r.xadd(key, {"payload": orjson.dumps(event)})


def run_worker(redis_url: str, pseudonymize: bool) -> None:
    drain_worker(redis_url, PREFIX, 2, privacy__pseudonymize=pseudonymize, segments__warmup=1)


def raw_entries(r: redis.Redis) -> int:
    return sum(r.xlen(stream_key(PREFIX, p)) for p in range(2))


@pytest.fixture
def pseudonymous_worker(
    redis_url: str, r: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """Alice and bob processed by a worker with pseudonyms (key `SECRET`)."""
    monkeypatch.setenv(SECRET_ENV, SECRET)
    publish(r, ["alice", "bob"])
    run_worker(redis_url, pseudonymize=True)
    assert r.exists(user_key(PREFIX, pseudonym(SECRET.encode(), "alice")))
    yield


def test_the_worker_records_a_fingerprint_of_its_key_never_the_key(
    r: redis.Redis, pseudonymous_worker: None
) -> None:
    recorded = r.hget(meta_key(PREFIX), META_IDS)
    assert recorded == id_mode(SECRET.encode()).encode()
    assert recorded.startswith(b"hmac-sha256:") and SECRET.encode() not in recorded


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        (None, "the worker stores pseudonymous user ids"),
        (b"another-secret", "is not the worker's pseudonym key"),
    ],
)
def test_forget_without_the_workers_key_refuses_and_deletes_nothing(
    r: redis.Redis, pseudonymous_worker: None, secret: bytes | None, message: str
) -> None:
    before = raw_entries(r)
    with pytest.raises(ConfigError, match=message):
        forget(r, PREFIX, 2, "alice", secret=secret)
    assert raw_entries(r) == before == 6
    assert r.xlen(control_key(PREFIX)) == 0
    assert r.exists(user_key(PREFIX, pseudonym(SECRET.encode(), "alice")))


def test_forget_with_the_workers_key_erases_the_pseudonymous_user(
    redis_url: str, r: redis.Redis, pseudonymous_worker: None
) -> None:
    counts = forget(r, PREFIX, 2, "alice", secret=SECRET.encode())
    assert counts["input_entries"] == 3
    run_worker(redis_url, pseudonymize=True)
    assert not r.exists(user_key(PREFIX, pseudonym(SECRET.encode(), "alice")))
    assert r.exists(user_key(PREFIX, pseudonym(SECRET.encode(), "bob")))


def test_forget_with_a_key_while_the_worker_stores_raw_ids_refuses(
    redis_url: str, r: redis.Redis
) -> None:
    publish(r, ["alice", "bob"])
    run_worker(redis_url, pseudonymize=False)
    assert r.hget(meta_key(PREFIX), META_IDS) == b"plain"
    with pytest.raises(ConfigError, match="the worker stores raw user ids"):
        forget(r, PREFIX, 2, "alice", secret=SECRET.encode())
    assert raw_entries(r) == 6
    assert r.exists(user_key(PREFIX, "alice"))


def test_the_forget_command_refuses_in_one_line_with_exit_2(
    redis_url: str, r: redis.Redis, pseudonymous_worker: None, tmp_path: Path
) -> None:
    config = tmp_path / "tailor.toml"
    config.write_text(f'[redis]\nprefix = "{PREFIX}"\n[source]\npartitions = 2\n')
    done = tailor_as_operator(redis_url, config, "forget", "alice")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "nothing was deleted" in done.stderr
    assert done.stdout == ""
    assert raw_entries(r) == 6


def test_inspect_without_the_workers_key_says_why_it_finds_nobody(
    redis_url: str, pseudonymous_worker: None, tmp_path: Path
) -> None:
    """A lookup under raw ids of a pseudonymous store finds nothing; saying "no profile" would
    hide why. With the worker's key the same command finds the user."""
    config = tmp_path / "tailor.toml"
    config.write_text(f'[redis]\nprefix = "{PREFIX}"\n')
    refused = tailor_as_operator(redis_url, config, "inspect", "alice")
    assert refused.returncode == 2, refused.stderr
    assert "inspect: the worker stores pseudonymous user ids" in refused.stderr
    assert refused.stderr.count("\n") == 1 and refused.stdout == ""
    keyed = {SECRET_ENV: SECRET, "TAILOR_PRIVACY_PSEUDONYMIZE": "true"}
    found = tailor_as_operator(redis_url, config, "inspect", "alice", **keyed)
    assert found.returncode == 0, found.stderr
    assert orjson.loads(found.stdout)["profile"]["version"] == 3
