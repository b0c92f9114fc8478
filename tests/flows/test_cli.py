"""The `tailor` command as a user meets it: demo on an embedded Redis, inspect, SIGTERM."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

import orjson
import redis

from tailor.operators.redis.keys import stream_key, updates_channel, user_key
from tailor.operators.redis.routing import partition_for


def env_without_redis(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    return {**env, "TAILOR_METRICS_PORT": "0", **extra}


def shadow_modules(directory: Path) -> None:
    """A user's own `state.py`, `flows.py` and `operators.py`, which fail when imported."""
    for name in ("state", "flows", "operators"):
        (directory / f"{name}.py").write_text(f'raise ImportError("the user\'s own {name}.py")\n')


def test_a_users_state_py_shadows_nothing(tmp_path: Path) -> None:
    """Tailor installs inside one `tailor` package: a user's `state.py` in the directory the
    worker starts from (first on `sys.path` for `python -m` and `bytewax.run`) is not ours."""
    shadow_modules(tmp_path)
    code = "import tailor.flows.worker, tailor.flows.cli; import state"
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    # Tailor's modules imported; then the user's own state.py was the one `import state` found
    assert run.returncode == 1
    assert run.stderr.strip().splitlines()[-1] == "ImportError: the user's own state.py"


def test_demo_on_embedded_redis_then_inspect(tmp_path: Path) -> None:
    shadow_modules(tmp_path)  # and the CLI runs from a directory holding a user's state.py
    demo = subprocess.run(
        [sys.executable, "-m", "tailor.flows.cli", "demo", "--users", "150"],
        cwd=tmp_path,
        env=env_without_redis(TAILOR_SEGMENTS_WARMUP="100"),  # 150 users: a shorter warm-up
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert demo.returncode == 0, demo.stderr[-3000:]
    assert "users with a profile: 150" in demo.stdout
    assert "cluster:" in demo.stdout
    assert "where to look" in demo.stdout
    assert (tmp_path / ".tailor" / "demo.db").exists()
    inspect = subprocess.run(
        [sys.executable, "-m", "tailor.flows.cli", "inspect", "user-00042"],
        cwd=tmp_path,
        env=env_without_redis(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert inspect.returncode == 0, inspect.stderr[-3000:]
    found = orjson.loads(inspect.stdout)
    assert found["profile"]["segment"].startswith("cluster:")
    segments = subprocess.run(
        [sys.executable, "-m", "tailor.flows.cli", "segments", "--json"],
        cwd=tmp_path,
        env=env_without_redis(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert segments.returncode == 0, segments.stderr[-3000:]
    rows = {row["segment"]: row for row in orjson.loads(segments.stdout)}
    cluster = rows[found["profile"]["segment"]]
    # the profile keeps the name its segment had when it was written; the table has the newest
    assert cluster["name"] and found["profile"]["segment_name"] and cluster["size"] >= 1
    assert "σ" in cluster["defining"] and cluster["last_change"].startswith("20")
    assert len({row["name"] for row in rows.values()}) == len(rows)  # names are unique
    assert len(found["recommendations"]["items"]) == 10


def test_inspect_unknown_user_exits_1(redis_url: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tailor.flows.cli", "inspect", "nobody"],
        env={**env_without_redis(), "REDIS_URL": redis_url},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "nobody" in done.stderr


def test_sigterm_drains_and_exits_cleanly(redis_url: str, r: redis.Redis, tmp_path: Path) -> None:
    """A long-lived worker writes what it read, then stops with exit code 0 on SIGTERM."""
    pubsub = r.pubsub()
    pubsub.subscribe(updates_channel("tailor"))
    assert pubsub.get_message(timeout=5)["type"] == "subscribe"  # type: ignore[index]
    worker = subprocess.Popen(
        [sys.executable, "-m", "tailor.flows.cli", "run"],
        env={
            **env_without_redis(TAILOR_RECOVERY_DIR=str(tmp_path / "recovery")),
            "REDIS_URL": redis_url,
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        users = [f"u{n}" for n in range(5)]
        for n, user in enumerate(users):
            event = {
                "event_id": f"e{n}",
                "user_id": user,
                "type": "page_view",
                "ts": 1_700_000_000 + n,
            }
            r.xadd(stream_key("tailor", partition_for(user, 4)), {"payload": orjson.dumps(event)})
        seen: set[str] = set()
        while seen != set(users):
            message = pubsub.get_message(timeout=30)
            assert message is not None, "worker wrote nothing within 30 s"
            if message["type"] == "message":
                seen.add(orjson.loads(message["data"])["user_id"])
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=60) == 0, worker.stderr.read()[-3000:] if worker.stderr else ""
    finally:
        if worker.poll() is None:
            worker.kill()
    assert all(r.hget(user_key("tailor", u), "version") == b"1" for u in users)


def test_every_subcommand_help_has_a_description_an_example_and_redis_url() -> None:
    """A user runs a subcommand from its `--help` alone: what it does, its arguments, an
    example, and where Redis comes from."""
    from tailor.flows.cli_parser import build_parser

    parser = build_parser("tailor")
    subcommands = next(
        a for a in parser._actions if isinstance(a, argparse._SubParsersAction)
    ).choices
    assert set(subcommands) >= {"run", "demo", "produce", "inspect", "segments", "resegment"}
    for name, sub in subcommands.items():
        text = sub.format_help()
        assert sub.description and len(sub.description) > 40, name
        assert "example:\n  " in text and f"tailor {name}" in text.split("example:")[1], name
        assert "REDIS_URL" in text, name
        for action in sub._actions:
            if action.dest not in ("help",):
                assert action.help, f"{name} {action.dest}"
