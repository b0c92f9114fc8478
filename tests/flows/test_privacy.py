"""Pseudonymous ids end to end: with `privacy.pseudonymize`, no raw user id reaches Redis,
and `tailor inspect` still finds a user by the id the shop knows."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import redis

from flows.sample import write_jsonl
from operators.pseudonym import pseudonym

PREFIX = "private"
SECRET = "not-a-real-secret"


def tailor(env: dict[str, str], config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flows.cli", "--config", str(config), *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
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
        [sys.executable, "-m", "flows.cli", "--config", str(config), "run", "--until-drained"],
        env={**os_env, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    assert "TAILOR_PSEUDONYM_SECRET" in done.stderr
