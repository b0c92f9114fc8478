"""Every failure a user can meet in `tailor` is one line on stderr naming the problem: exit
code 2 for usage and configuration (bad arguments or settings, an unknown adapter, a missing
file, credentials or permissions Redis refuses), 1 at run time (Redis unreachable), never a
traceback and never the password.

Most cases call `main([...])` in this process, which prints exactly what the command prints;
those where the process itself matters (the worker's start-up, the argument parser's exit,
Ctrl-C, `--version`) run `python -m tailor.flows.cli`.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import redis

from tailor.flows import cli
from tailor.flows.cli import main
from tests.conftest import RedisServer, free_port
from tests.flows.cli_support import run_cli

PASSWORD = "Zx9-secret-Qw4"
LOG_RECORD = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (INFO|WARNING) ")
#: An ACL user that may log in and run nothing.
POWERLESS = "powerless"

#: The commands that talk to Redis, as a user types them ({events}: a JSON lines file).
REDIS_COMMANDS = {
    "produce": ["produce", "{events}", "--no-progress"],
    "inspect": ["inspect", "u1"],
    "segments": ["segments"],
    "resegment": ["resegment"],
    "forget": ["forget", "u1"],
    "block": ["block", "i1"],
    "demo": ["demo", "--users", "40"],
}


@pytest.fixture(scope="module")
def locked_server() -> Iterator[RedisServer]:
    """A Redis that wants a password, and knows a user allowed no command at all."""
    server = RedisServer()
    server.start()
    admin = redis.Redis(port=server.port)
    admin.execute_command("ACL", "SETUSER", POWERLESS, "on", f">{PASSWORD}", "~*", "&*", "-@all")
    admin.config_set("requirepass", PASSWORD)
    admin.close()
    yield server
    server.stop()
    shutil.rmtree(server.dir, ignore_errors=True)


@pytest.fixture
def at(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in `tmp_path`, with no setting from the test's environment."""
    for name in list(os.environ):
        if name.startswith("TAILOR_") or name == "REDIS_URL":
            monkeypatch.delenv(name)
    monkeypatch.setenv("TAILOR_METRICS_PORT", "0")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def events_file(folder: Path) -> Path:
    path = folder / "events.jsonl"
    event = {"event_id": "e1", "user_id": "u1", "type": "page_view", "ts": 1_700_000_000}
    path.write_bytes(orjson.dumps(event) + b"\n")
    return path


def command(name: str, folder: Path) -> list[str]:
    return [arg.format(events=events_file(folder)) for arg in REDIS_COMMANDS[name]]


def tailor(
    args: list[str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    redis_url: str = "",
) -> tuple[int, str]:
    """`tailor ARGS` in this process: its exit code and its stderr."""
    if redis_url:
        monkeypatch.setenv("REDIS_URL", redis_url)
    capsys.readouterr()
    code = main(args)
    return code, capsys.readouterr().err


def one_line(stderr: str, *names: str) -> str:
    """The single line of `stderr`, after checking it names every one of `names`."""
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr[-3000:]
    assert lines[0].startswith("tailor"), lines[0]
    for name in names:
        assert name in lines[0], lines[0]
    assert "Zx9" not in stderr and "Qw4" not in stderr, stderr  # never the password
    return lines[0]


def without_log_records(stderr: str) -> str:
    """`tailor run`'s stderr minus its log (timestamped records such as the recovery store's
    compaction at start-up, which precede the check of Redis): what is left is the error."""
    return "".join(line for line in stderr.splitlines(keepends=True) if not LOG_RECORD.match(line))


def url_of(server: RedisServer, user: str = "default", password: str = PASSWORD) -> str:
    return f"redis://{user}:{password}@127.0.0.1:{server.port}/0"


@pytest.mark.parametrize("name", sorted(REDIS_COMMANDS))
def test_an_unreachable_redis_is_one_line_exit_1(
    name: str, at: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()  # nothing listens there
    url = f"redis://127.0.0.1:{port}/0"
    code, stderr = tailor(command(name, at), capsys, monkeypatch, url)
    assert code == 1, stderr
    one_line(stderr, "cannot reach Redis", f"127.0.0.1:{port}", "REDIS_URL")


@pytest.mark.parametrize("name", sorted(REDIS_COMMANDS))
def test_a_wrong_password_is_one_line_exit_2(
    name: str,
    locked_server: RedisServer,
    at: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = url_of(locked_server, password="Zx9-wrong-Qw4")
    code, stderr = tailor(command(name, at), capsys, monkeypatch, url)
    assert code == 2, stderr
    one_line(stderr, "configuration error: redis.url: Redis refused the credentials")


@pytest.mark.parametrize("name", ["inspect", "produce"])
def test_no_password_where_redis_wants_one_is_one_line_exit_2(
    name: str,
    locked_server: RedisServer,
    at: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = f"redis://127.0.0.1:{locked_server.port}/0"
    code, stderr = tailor(command(name, at), capsys, monkeypatch, url)
    assert code == 2, stderr
    one_line(stderr, "redis.url: Redis requires a password")


@pytest.mark.parametrize("name", ["inspect", "block", "forget"])
def test_an_acl_user_without_permissions_is_one_line_exit_2(
    name: str,
    locked_server: RedisServer,
    at: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = url_of(locked_server, user=POWERLESS)
    code, stderr = tailor(command(name, at), capsys, monkeypatch, url)
    assert code == 2, stderr
    one_line(stderr, "redis.url: the Redis user lacks a permission", "to run the", "tailor acl")


@pytest.mark.parametrize("name", ["produce", "evaluate"])
def test_a_missing_file_is_one_line_exit_2(
    name: str, at: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    args = [name, str(at / "missing.csv")]
    code, stderr = tailor(args, capsys, monkeypatch, f"redis://127.0.0.1:{free_port()}/0")
    assert code == 2, stderr
    one_line(stderr, "missing.csv: no such file")


@pytest.mark.parametrize("name", ["produce", "evaluate"])
def test_an_unknown_adapter_is_one_line_exit_2(
    name: str, at: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    args = [name, str(events_file(at)), "--adapter", "parquet"]
    code, stderr = tailor(args, capsys, monkeypatch, f"redis://127.0.0.1:{free_port()}/0")
    assert code == 2, stderr
    one_line(stderr, "unknown adapter 'parquet'", "movielens")


@pytest.mark.parametrize(
    ("text", "names"),
    [
        (None, "config file not found"),
        ("[redis\n", "not valid TOML"),
        ("[redis]\nport = 6379\n", "redis.port: unknown setting"),
        ("directory", "Is a directory"),
    ],
)
def test_a_bad_config_file_is_one_line_exit_2(
    text: str | None,
    names: str,
    at: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = at / "tailor.toml"
    if text == "directory":
        path.mkdir()
    elif text is not None:
        path.write_text(text)
    code, stderr = tailor(["--config", str(path), "inspect", "u1"], capsys, monkeypatch)
    assert code == 2, stderr
    one_line(stderr, names)


def test_a_bug_keeps_its_traceback(
    at: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the failures a user can act on are turned into a line; a bug is not hidden."""

    def broken(*_args: object) -> int:
        raise RuntimeError("a bug in Tailor")

    monkeypatch.setitem(cli.COMMANDS, "acl", broken)
    with pytest.raises(RuntimeError, match="a bug in Tailor"):
        tailor(["acl"], capsys, monkeypatch)


def test_run_with_a_wrong_password_is_one_line_exit_2(
    locked_server: RedisServer, tmp_path: Path
) -> None:
    done = run_cli(url_of(locked_server, password="Zx9-wrong-Qw4"), "t", tmp_path, "run")
    assert done.returncode == 2, done.stderr[-3000:]
    one_line(
        without_log_records(done.stderr),
        "configuration error: redis.url: Redis refused the credentials",
    )


@pytest.mark.parametrize(
    ("files", "env", "names"),
    [
        (["missing.jsonl"], {}, "missing.jsonl: no such file"),
        (["{events}"], {"TAILOR_SOURCE_REPLAY_ADAPTER": "parquet"}, "unknown adapter 'parquet'"),
    ],
)
def test_run_replay_of_a_bad_file_is_one_line_exit_2(
    files: list[str], env: dict[str, str], names: str, redis_url: str, tmp_path: Path
) -> None:
    replay = [name.format(events=events_file(tmp_path)) for name in files]
    done = run_cli(redis_url, "t", tmp_path, "run", "--replay", *replay, "--until-drained", **env)
    assert done.returncode == 2, done.stderr[-3000:]
    one_line(without_log_records(done.stderr), names)


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["segments", "--bogus"], "unrecognized arguments: --bogus"),
        (["evaluate", "data.csv", "--k", "ten"], "argument --k: not a whole number: 'ten'"),
        (["evaluate", "data.csv", "--k", "0"], "argument --k: must be at least 1, got 0"),
        (["produce", "data.csv", "--limit", "-1"], "argument --limit: must be at least 1"),
        (["forget", ""], "argument user: not an id: ''"),
        (["block", "x" * 257], "argument item: not an id"),
        ([], "required: command"),
    ],
)
def test_a_usage_error_is_one_line_exit_2(args: list[str], names: str, tmp_path: Path) -> None:
    done = run_cli("redis://127.0.0.1:1/0", "t", tmp_path, *args)
    assert done.returncode == 2, done.stderr[-3000:]
    one_line(done.stderr, names, "--help")


def test_version_prints_the_package_version(tmp_path: Path) -> None:
    from importlib.metadata import version

    done = run_cli("", "t", tmp_path, "--version")
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout == f"tailor {version('tailor')}\n"
    assert done.stderr == ""


def test_ctrl_c_is_one_line_exit_130(tmp_path: Path) -> None:
    """Interrupted while it waits for a Redis that accepts and never answers."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        silent.settimeout(120)
        url = f"redis://127.0.0.1:{silent.getsockname()[1]}/0"
        env = {k: v for k, v in os.environ.items() if not k.startswith("TAILOR_")}
        env.update(REDIS_URL=url, PYTHONHASHSEED="0")
        process = subprocess.Popen(
            [sys.executable, "-m", "tailor.flows.cli", "block", "i1"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            connection, _ = silent.accept()  # the command is now waiting for Redis's answer
            with connection:
                process.send_signal(signal.SIGINT)
                _, stderr = process.communicate(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
    assert process.returncode == 130, stderr[-3000:]
    assert one_line(stderr) == "tailor: interrupted"
