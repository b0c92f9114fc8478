"""The start-up permission check against a real Redis with ACL users: what is missing is
named, nothing is run, and both ways of asking work (``ACL DRYRUN`` for a user allowed it,
a never-executed ``MULTI`` for a least-privilege user)."""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from tailor.flows.cli import main
from tailor.flows.config import ConfigError
from tailor.flows.preflight import check_redis
from tailor.operators.redis.permissions import acl_rules, denials, describe, worker_needs
from tests.conftest import RedisServer

PREFIX = "boot"
PASSWORD = "pw"
#: A user who may also ask ``ACL DRYRUN`` (checked that way), and one who may not (probed).
KINDS = {"dryrun": ["+acl|whoami", "+acl|dryrun"], "probe": []}
_names = itertools.count()


@pytest.fixture(scope="module")
def admin() -> Iterator[redis.Redis]:
    """A private server: ACL users would outlive `flushall` on the shared one."""
    server = RedisServer()
    server.start()
    client = redis.Redis(port=server.port)
    yield client
    client.close()
    server.stop()
    shutil.rmtree(server.dir, ignore_errors=True)


@pytest.fixture
def user_factory(admin: redis.Redis) -> Iterator[Callable[[list[str]], redis.Redis]]:
    made: list[tuple[str, redis.Redis]] = []

    def make(rules: list[str]) -> redis.Redis:
        name = f"user{next(_names)}"
        admin.execute_command("ACL", "SETUSER", name, "on", f">{PASSWORD}", *rules)
        client = redis.Redis(
            port=admin.get_connection_kwargs()["port"], username=name, password=PASSWORD
        )
        made.append((name, client))
        return client

    yield make
    for name, client in made:
        client.close()
        admin.execute_command("ACL", "DELUSER", name)
    admin.flushall()


def redis_major(client: redis.Redis) -> int:
    return int(str(client.info("server")["redis_version"]).split(".")[0])


def missing(client: redis.Redis) -> str:
    """The check's one line, or "" when nothing is missing."""
    user, denied = denials(client, worker_needs(PREFIX, 2))
    return describe(user, denied, PREFIX) if denied else ""


@pytest.mark.parametrize("kind", KINDS)
def test_the_least_privilege_rules_are_enough(
    kind: str, user_factory: Callable[[list[str]], redis.Redis], admin: redis.Redis
) -> None:
    client = user_factory([*acl_rules(PREFIX), *KINDS[kind]])
    assert missing(client) == ""
    assert admin.dbsize() == 0  # nothing the check sent was run


def test_the_default_user_lacks_nothing(admin: redis.Redis) -> None:
    assert missing(admin) == ""
    assert admin.dbsize() == 0


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("taken", "named"),
    [
        (["-evalsha"], "commands evalsha"),
        (["-@scripting"], "commands evalsha, script|exists, script|load"),
        (["-multi"], "commands multi"),
        (["-exec"], "commands exec"),
        (["-sismember"], "commands sismember"),  # only ever sent from inside a Lua script
        (["-xinfo|stream"], "commands xinfo|stream"),
        (["resetkeys", "~other:*"], f"keys {PREFIX}:* ("),
        (["resetchannels", "&other"], f"channels {PREFIX}:updates "),
    ],
)
def test_a_missing_permission_is_named(
    kind: str,
    taken: list[str],
    named: str,
    user_factory: Callable[[list[str]], redis.Redis],
    admin: redis.Redis,
) -> None:
    if any("|" in rule for rule in taken) and redis_major(admin) < 7:
        pytest.skip("Redis 6 cannot take one subcommand away")
    client = user_factory([*acl_rules(PREFIX), *KINDS[kind], *taken])
    line = missing(client)
    assert named in line, line
    assert "\n" not in line and "lacks permissions the worker needs" in line
    assert line.startswith("Redis user 'user" if kind == "dryrun" else "the Redis user"), line
    assert admin.dbsize() == 0  # probes were queued in a transaction that never ran


def test_keys_outside_the_allowed_patterns_are_named(
    user_factory: Callable[[list[str]], redis.Redis],
) -> None:
    """A user allowed only the input streams: every other key pattern is named, not those."""
    client = user_factory(
        [*acl_rules(PREFIX), "resetkeys", f"~{PREFIX}:events:*", f"~{PREFIX}:control"]
    )
    line = missing(client)
    assert f"{PREFIX}:user:*" in line and f"{PREFIX}:deadletter" in line, line
    assert f"{PREFIX}:events:" not in line and f"{PREFIX}:control" not in line, line


def test_which_way_each_kind_of_user_is_checked(
    user_factory: Callable[[list[str]], redis.Redis], admin: redis.Redis
) -> None:
    """The "dryrun" user is asked with ACL DRYRUN, the "probe" user cannot be."""
    if redis_major(admin) < 7:
        pytest.skip("ACL DRYRUN came with Redis 7: every user is probed before")
    rich = user_factory([*acl_rules(PREFIX), *KINDS["dryrun"]])
    lean = user_factory(acl_rules(PREFIX))
    assert rich.execute_command("ACL", "DRYRUN", "default", "PING") == b"OK"
    with pytest.raises(redis.exceptions.NoPermissionError):
        lean.execute_command("ACL", "DRYRUN", "default", "PING")


def test_the_printed_acl_line_is_enough_for_the_worker(
    admin: redis.Redis, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`tailor acl` prints what an operator pastes: a user made from it passes the start-up
    check for that prefix, and loses it without any one of the worker's commands."""
    monkeypatch.setenv("TAILOR_REDIS_PREFIX", "shop")
    monkeypatch.setenv("PYTHONHASHSEED", "0")  # the CLI would re-execute itself otherwise
    assert main(["acl", "--user", "shopper"]) == 0
    words = capsys.readouterr().out.split()
    assert words[:5] == ["ACL", "SETUSER", "shopper", "on", ">PASSWORD"]
    assert {"~shop:*", "&shop:*", "+evalsha", "+xrange", "+zadd", "+scan"} <= set(words)
    port = admin.get_connection_kwargs()["port"]
    admin.execute_command(*words[:4], f">{PASSWORD}", *words[5:])
    client = redis.Redis(port=port, username="shopper", password=PASSWORD)
    admin.hset("shop:user:u1", mapping={"version": "1", "segment": '"cluster:1"'})  # legacy
    try:
        needs = worker_needs("shop", 4)
        check_redis(client, needs, "shop")  # raises ConfigError on any missing permission
        # then the stored data was upgraded (tailor.operators.redis.upgrade) by that user
        assert admin.hget("shop:user:u1", "memberships") == b'["cluster:1"]'
        admin.execute_command("ACL", "SETUSER", "shopper", "-evalsha")
        with pytest.raises(ConfigError, match="evalsha"):
            check_redis(client, needs, "shop")
    finally:
        client.close()
        admin.execute_command("ACL", "DELUSER", "shopper")


def test_the_docs_show_the_acl_line_tailor_acl_prints() -> None:
    """docs/operations.md's least-privilege user for the prefix `tailor` is today's."""
    readme = (Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text()
    line = f"ACL SETUSER tailor on >PASSWORD {' '.join(acl_rules('tailor'))}"
    assert f"`{line}`" in readme
