"""`tailor demo` on a Redis it shares, and no command printing the Redis password.

The server here requires a password (`requirepass`), as a shared production Redis does.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import redis

from tailor.flows.demo_prefix import claim, is_tailor_key, keys_under
from tailor.operators.redis.keys import demo_marker_key
from tests.conftest import RedisServer
from tests.flows.cli_support import run_cli

PASSWORD = "Pw0rd-Xq7"
#: Pieces of every password used here: none may appear in any output.
FRAGMENTS = ("Pw0rd", "Xq7")
PREFIX = "a"
PRECIOUS = f"{PREFIX}:precious-appdata"


@pytest.fixture(scope="module")
def locked_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    redis.Redis(port=server.port).config_set("requirepass", PASSWORD)
    yield server
    server.stop()
    shutil.rmtree(server.dir, ignore_errors=True)


@pytest.fixture
def locked(locked_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis(port=locked_server.port, password=PASSWORD)
    yield client
    client.flushall()
    client.close()


def url_of(server: RedisServer, password: str = PASSWORD) -> str:
    return f"redis://default:{password}@127.0.0.1:{server.port}/0"


def tailor(url: str, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(url, PREFIX, cwd, *args, TAILOR_SEGMENTS_WARMUP="20")  # 40 users


def assert_no_password(done: subprocess.CompletedProcess[str]) -> None:
    output = done.stdout + done.stderr
    leaked = [fragment for fragment in FRAGMENTS if fragment in output]
    assert not leaked, f"password in the output: {output[-3000:]}"


def published(done: subprocess.CompletedProcess[str]) -> int:
    found = re.search(r"events published: (\d+)", done.stdout)
    assert found, done.stdout[-3000:]
    return int(found[1])


def test_demo_keeps_what_it_did_not_write(
    locked_server: RedisServer, locked: redis.Redis, tmp_path: Path
) -> None:
    """A foreign key under the prefix stops the demo (exit 2, nothing touched); `--reset`
    runs it and keeps that key; a plain second run clears only the demo's own keys."""
    locked.set(PRECIOUS, "keep me")
    url = url_of(locked_server)

    refused = tailor(url, tmp_path, "demo", "--users", "40")
    assert refused.returncode == 2, refused.stderr[-3000:]
    message = refused.stderr.strip().splitlines()
    assert len(message) == 1
    assert "prefix 'a' holds 1 key(s)" in message[0] and "--reset" in message[0]
    assert list(keys_under(locked, PREFIX)) == [PRECIOUS.encode()]

    reset = tailor(url, tmp_path, "demo", "--users", "40", "--reset")
    assert reset.returncode == 0, reset.stderr[-3000:]
    assert "users with a profile: 40" in reset.stdout
    assert locked.get(PRECIOUS) == b"keep me"
    assert locked.exists(demo_marker_key(PREFIX))

    again = tailor(url, tmp_path, "demo", "--users", "40")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "users with a profile: 40" in again.stdout
    events = sum(locked.xlen(f"{PREFIX}:events:{n}") for n in range(4))
    assert events == published(again)  # the first run's events were cleared, not kept
    assert locked.get(PRECIOUS) == b"keep me"
    # Every key the runs left is one the demo would clear: the schema list has not drifted.
    left = [key for key in keys_under(locked, PREFIX) if key != PRECIOUS.encode()]
    assert left and all(is_tailor_key(PREFIX, key) for key in left), left

    for done in (refused, reset, again):
        assert_no_password(done)
    assert "redis://default:***@127.0.0.1" in again.stdout


def jsonl_file(folder: Path) -> Path:
    path = folder / "events.jsonl"
    event = {"event_id": "e1", "user_id": "u1", "type": "page_view", "ts": 1_700_000_000}
    path.write_bytes(orjson.dumps(event) + b"\n")
    return path


#: Command, exit code with the right password (`run`: a wrong one).
COMMANDS = {
    "inspect": (["inspect", "nobody"], 1),
    "segments": (["segments"], 1),
    "forget": (["forget", "u1"], 0),
    "block": (["block", "i1"], 0),
    "produce": (["produce", "{file}", "--no-progress"], 0),
    "run": (["run"], 2),
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_no_command_prints_the_password(
    command: str, locked_server: RedisServer, locked: redis.Redis, tmp_path: Path
) -> None:
    """Neither with a working URL nor with a password holding an unencoded '/' (which the
    URL parser reads as the port, and used to quote in its error)."""
    args, expected = COMMANDS[command]
    args = [arg.format(file=jsonl_file(tmp_path)) for arg in args]
    good = url_of(locked_server, PASSWORD + ("-wrong" if command == "run" else ""))
    done = tailor(good, tmp_path, *args)
    assert done.returncode == expected, done.stderr[-3000:]
    assert_no_password(done)

    malformed = tailor(url_of(locked_server, "Pw0rd/Xq7"), tmp_path, *args)
    assert malformed.returncode == 2, malformed.stderr[-3000:]
    assert "redis.url: cannot be parsed" in malformed.stderr
    assert "percent-encode" in malformed.stderr
    assert_no_password(malformed)


def test_a_configuration_error_never_quotes_the_password(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The last net: a message that quotes the URL in a form `redact_url` cannot see (here a
    type error quoting a TOML array) is scrubbed where the CLI prints it."""
    from tailor.flows.cli import main

    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv("TAILOR_REDIS_URL", f'["redis://:{PASSWORD}@127.0.0.1:6379/0"]')
    assert main(["inspect", "u1"]) == 2
    printed = capsys.readouterr().err
    assert printed.startswith("tailor: configuration error: redis.url: expected str")
    assert not [fragment for fragment in FRAGMENTS if fragment in printed], printed


def test_a_prefix_with_glob_characters_is_matched_literally(r: redis.Redis) -> None:
    """Prefix ``a*`` names the keys ``a*:...``, not every key starting with ``a``."""
    r.set("a*:user:u1", "demo's")
    r.set("ab:user:u1", "someone else's")
    r.set("a*:notes", "someone else's, under the same prefix")
    assert sorted(keys_under(r, "a*")) == [b"a*:notes", b"a*:user:u1"]
    assert claim(r, "a*") == 1
    assert sorted(r.keys()) == [b"a*:demo", b"a*:notes", b"ab:user:u1"]
