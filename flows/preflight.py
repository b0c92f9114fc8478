"""Before the worker reads anything: wait for Redis, then check that it lets the worker work.

A Redis that is down, stalled or still loading is waited for, with capped backoff and a log
line when the wait starts, reminders, and one when Redis answers (`tailor.operators.redis.outage`):
a worker started before its Redis, or restarted during an outage, must neither crash nor
restart-loop under a supervisor. A stop request (SIGTERM) ends the wait. Wrong credentials,
a failed TLS handshake or a missing ACL permission never heal by waiting: each is a
configuration error, said in one line, exit code 2.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from pathlib import Path

import redis

from tailor.flows.config import Config, ConfigError
from tailor.flows.worker import replay_files
from tailor.operators import lifecycle
from tailor.operators.redis.permissions import PING, Denial, Need, denials, describe, worker_needs
from tailor.operators.redis.retry import (
    TRANSIENT_ERRORS,
    RetryPolicy,
    call_with_retry,
    no_retry_client,
)
from tailor.operators.redis.upgrade import upgrade

#: Waits for ever (until a stop request), at most 5 s between attempts.
STARTUP_POLICY = RetryPolicy(max_attempts=0, base_s=0.1, cap_s=5.0)
#: A stalled Redis (accepting, never answering) becomes a retried timeout after this long.
SOCKET_TIMEOUT_S = 5.0


def prepare_redis(
    config: Config,
    replay_paths: Sequence[Path] = (),
    policy: RetryPolicy = STARTUP_POLICY,
    sleep: Callable[[float], None] = lifecycle.sleep,
) -> bool:
    """Wait until Redis answers, then check credentials and permissions (`ConfigError`).

    :returns: False when a stop was requested before Redis answered.
    """
    if not config.redis_url:
        raise ConfigError("redis.url: not set (set REDIS_URL or redis.url in the config file)")
    replaying = bool(replay_files(config, replay_paths))
    needs = worker_needs(config.prefix, 0 if replaying else config.source.partitions)
    client = no_retry_client(config.redis_url, SOCKET_TIMEOUT_S)
    try:
        call_with_retry(
            lambda: check_redis(client, needs, config.prefix),
            "connect",
            policy,
            random.Random(),
            sleep,
        )
    except TRANSIENT_ERRORS:
        if lifecycle.stop_requested():
            return False
        raise
    finally:
        client.close()
    return True


def check_redis(client: redis.Redis, needs: Sequence[Need], prefix: str) -> None:
    """One attempt: Redis answers, accepts the credentials and allows every need; then data
    stored by an earlier release is brought to the current schema (`upgrade`)."""
    check_credentials(client, prefix)
    user, denied = denials(client, needs)
    if denied:
        raise ConfigError(f"redis.url: {describe(user, denied, prefix)}")
    upgrade(client, prefix)


def check_credentials(client: redis.Redis, prefix: str) -> None:
    """PING; wrong credentials or TLS settings are a `ConfigError`, an unreachable Redis is
    raised as is (the caller waits)."""
    try:
        client.ping()
    except redis.AuthenticationError as exc:
        raise ConfigError(f"redis.url: Redis refused the credentials ({exc})") from exc
    except redis.exceptions.NoPermissionError as exc:
        raise ConfigError(
            f"redis.url: {describe(None, [Denial(PING, 'command')], prefix)}"
        ) from exc
    except redis.ConnectionError as exc:
        if "SSL" in str(exc) or "certificate" in str(exc):
            raise ConfigError(f"redis.url: TLS handshake failed ({exc})") from exc
        raise
