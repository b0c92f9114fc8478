"""One retry layer for the Redis sinks: bounded, jittered, and counted.

The sinks' clients have redis-py's own retries turned off (`no_retry_client`): two layers
would multiply attempts (10 × 8) and hide outages from the error counter. Here a whole batch
is retried, which is safe because every batch the sinks send is idempotent (version-guarded
scripts) or explicitly at-least-once (stream notices, dead letters).

`max_attempts = 0` (the worker's default) retries for ever: a blocked `write_batch` blocks the
Bytewax worker, whose sources then stop reading, which is backpressure with nothing dropped.
A stop request (SIGTERM) ends that wait: the error is raised and recovery replays the batch
from the last snapshot on the next start. With `max_attempts > 0` the last error is raised
after that many attempts, the same "pause and seek back" quix-streams does.

`tailor_redis_up{operation}` follows every attempt: 1 after Redis answered, 0 after it could
not be reached (connection refused or dropped, timeout, still loading its data set); the log
says the same at a bounded rate (`tailor.operators.redis.outage`).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import redis
from redis.backoff import NoBackoff
from redis.exceptions import BusyLoadingError, NoScriptError
from redis.retry import Retry

from tailor.operators import lifecycle
from tailor.operators.metrics import REDIS_ERRORS, REDIS_UP
from tailor.operators.redis.outage import outage_log

T = TypeVar("T")

#: Worth another attempt: the server is unreachable, slow, restarting or just restarted
#: (a restart empties the script cache; the next attempt's pipeline loads scripts again).
TRANSIENT_ERRORS: tuple[type[Exception], ...] = (
    redis.ConnectionError,
    redis.TimeoutError,
    BusyLoadingError,
    NoScriptError,
)

#: Errors that mean Redis could not serve at all (`tailor_redis_up` drops to 0).
UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (
    redis.ConnectionError,
    redis.TimeoutError,
    BusyLoadingError,
)


def mark_redis_up(operation: str, exc: BaseException | None = None) -> None:
    """Set `tailor_redis_up{operation}`: 0 when `exc` says Redis was unreachable, else 1;
    and log the outage's start, reminders and end (`tailor.operators.redis.outage`).

    A non-transient error (`ResponseError`, `NoScriptError`) still proves the server answered.
    """
    unreachable = isinstance(exc, UNAVAILABLE_ERRORS)
    REDIS_UP.labels(operation).set(0 if unreachable else 1)
    if exc is not None and unreachable:
        outage_log(operation).failed(exc)
    else:
        outage_log(operation).answered()


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently to retry: capped exponential backoff with full jitter.

    Full jitter (a uniform draw below the exponential bound) spreads workers that failed
    together, so they don't hammer a recovering server in lockstep. Not redis-py's
    `FullJitterBackoff`: that draws from the global `random`, this from a generator the
    caller seeds, so a test can tell the waits in advance.
    """

    max_attempts: int = 8
    base_s: float = 0.05
    cap_s: float = 5.0

    def __post_init__(self) -> None:
        if self.max_attempts < 0:
            raise ValueError("max_attempts must be 0 (for ever) or positive")
        if self.base_s < 0 or self.cap_s < 0:
            raise ValueError("backoff times must not be negative")

    def delay(self, failures: int, rng: random.Random) -> float:
        """Seconds to wait after the `failures`-th failed attempt (1-based)."""
        bound = min(self.cap_s, self.base_s * 2.0 ** min(failures - 1, 64))
        return bound * rng.random()

    def exhausted(self, failures: int) -> bool:
        """Whether `failures` failed attempts are the last; never when retrying for ever,
        unless a stop was requested (an endless wait would make SIGTERM hang the worker)."""
        if self.max_attempts == 0:
            return lifecycle.stop_requested()
        return failures >= self.max_attempts


def call_with_retry(
    attempt: Callable[[], T],
    operation: str,
    policy: RetryPolicy,
    rng: random.Random,
    sleep: Callable[[float], None],
) -> T:
    """Run `attempt` until it succeeds, retrying transient Redis errors only.

    Every failure is counted in `REDIS_ERRORS` under `operation` and the error class. Other
    Redis errors (a `ResponseError` such as OOM or a script error) are not transient:
    counted and raised at once.
    """
    failures = 0
    while True:
        try:
            result = attempt()
        except TRANSIENT_ERRORS as exc:
            failures += 1
            REDIS_ERRORS.labels(operation, type(exc).__name__).inc()
            mark_redis_up(operation, exc)
            if policy.exhausted(failures):
                exc.add_note(
                    f"tailor: {operation} gave up after {failures} attempts; "
                    "Bytewax recovery replays from the last snapshot"
                )
                raise
            sleep(policy.delay(failures, rng))
        except redis.RedisError as exc:
            REDIS_ERRORS.labels(operation, type(exc).__name__).inc()
            mark_redis_up(operation, exc)
            raise
        else:
            mark_redis_up(operation)
            return result


def no_retry_client(url: str, socket_timeout_s: float) -> redis.Redis:
    """A client that fails fast: no redis-py retries, bounded socket waits.

    The timeout turns a stalled server into a `TimeoutError` the retry layer sees, instead
    of a worker blocked for ever.
    """
    return redis.Redis.from_url(
        url,
        retry=Retry(NoBackoff(), 0),
        socket_timeout=socket_timeout_s,
        socket_connect_timeout=socket_timeout_s,
    )


@dataclass
class Writer:
    """One sink partition's connection plus its retry policy, jitter source and sleeper."""

    client: redis.Redis
    policy: RetryPolicy
    rng: random.Random
    sleep: Callable[[float], None]

    def run(self, operation: str, attempt: Callable[[], T]) -> T:
        """`attempt` with retries (see `call_with_retry`), counted under `operation`."""
        return call_with_retry(attempt, operation, self.policy, self.rng, self.sleep)


class RetryingSinkSettings:
    """Connection and retry settings shared by the Redis sinks; builds each worker's `Writer`.

    :arg max_attempts: attempts per batch before the error is raised (recovery replays);
        0 retries for ever (until a stop is requested).
    :arg backoff_base_s, backoff_cap_s: capped exponential backoff with jitter.
    :arg sleep: how to wait between attempts (tests pass a no-op).
    :arg seed: seeds the backoff jitter; each worker adds its index.
    :arg socket_timeout_s: a stalled server becomes a retried `TimeoutError`.
    """

    def __init__(
        self,
        redis_url: str,
        max_attempts: int = 8,
        backoff_base_s: float = 0.05,
        backoff_cap_s: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
        seed: int = 0,
        socket_timeout_s: float = 5.0,
    ) -> None:
        self.redis_url = redis_url
        self.policy = RetryPolicy(max_attempts, backoff_base_s, backoff_cap_s)
        self.sleep = sleep
        self.seed = seed
        self.socket_timeout_s = socket_timeout_s

    def writer(self, worker_index: int) -> Writer:
        return Writer(
            no_retry_client(self.redis_url, self.socket_timeout_s),
            self.policy,
            random.Random(self.seed * 65_536 + worker_index),
            self.sleep,
        )
