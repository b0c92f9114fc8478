"""The worker's heartbeat: proof, in Redis, that each Bytewax worker is still turning over.

Each worker writes ``{prefix}:heartbeat:{worker}`` (`tailor.operators.redis.keys.heartbeat_key`)
every `every_s` seconds, with a TTL of `TTL_PERIODS` periods: JSON ``{"at": wall-clock epoch
seconds, "worker": w, "workers": n}``. ``tailor serve``'s ``/readyz`` reads it
(`heartbeat_ages`).

The beat is written by an input of the dataflow (`Heartbeat`, a dynamic source that emits
nothing), not by a thread beside it: Bytewax runs every step of a worker on that worker's
one thread, so the input is only polled while the worker goes round its steps. A sink stuck
retrying a write, a step that never returns or a dead process all stop the beat; the key then
expires, and a reader that compares `at` with its clock sees the age grow before that. It
cannot see a worker that turns over but makes no progress (an empty stream looks the same).

Only a run that does not end by itself beats: a dataflow ends when all its inputs end, and
this one would never end on its own, so drained runs and replays (`--until-drained`, files)
have no heartbeat. It ends at a stop request (SIGTERM), and a clean stop deletes the key.
A failed write is counted (`tailor_redis_errors_total{operation="heartbeat"}`) and skipped:
readers see the beat age, and the sinks already wait for Redis.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import redis
from bytewax.inputs import DynamicSource, StatelessSourcePartition

from tailor.operators import lifecycle
from tailor.operators.metrics import REDIS_ERRORS
from tailor.operators.redis.keys import heartbeat_key
from tailor.operators.redis.retry import no_retry_client

__all__ = ["TTL_PERIODS", "Heartbeat", "beat_value", "heartbeat_ages"]

#: The key expires after this many missed periods: a dead worker's beat disappears.
TTL_PERIODS = 3
#: Socket waits of a beat: the write runs on the worker's thread, so it must never hang.
SOCKET_TIMEOUT_S = 0.5


def beat_value(at: float, worker: int, workers: int) -> bytes:
    """The stored JSON of one beat.

    >>> beat_value(1700000000.5, 0, 2)
    b'{"at":1700000000.5,"worker":0,"workers":2}'
    """
    return orjson.dumps({"at": at, "worker": worker, "workers": workers})


class _Beat(StatelessSourcePartition[Any]):
    """One worker's beat: writes every `every_s`, and ends at a stop request."""

    def __init__(
        self, client: redis.Redis, prefix: str, every_s: float, worker: int, workers: int
    ) -> None:
        self._client = client
        self._key = heartbeat_key(prefix, worker)
        self._every = timedelta(seconds=every_s)
        self._ttl_ms = max(1, int(every_s * TTL_PERIODS * 1000))
        self._worker, self._workers = worker, workers
        self._poll = timedelta(seconds=min(every_s, lifecycle.SLEEP_TICK_S))
        self._next_write = 0.0
        self._awake: datetime | None = None

    def next_batch(self) -> list[Any]:
        """Beat when due; polled more often than that, so a stop request is seen at once."""
        if lifecycle.stop_requested():
            raise StopIteration
        now = time.monotonic()
        if now >= self._next_write:
            self._write()
            self._next_write = now + self._every.total_seconds()
        self._awake = datetime.now(UTC) + self._poll
        return []

    def _write(self) -> None:
        value = beat_value(time.time(), self._worker, self._workers)
        try:
            self._client.set(self._key, value, px=self._ttl_ms)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            REDIS_ERRORS.labels("heartbeat", type(exc).__name__).inc()

    def next_awake(self) -> datetime | None:
        return self._awake

    def close(self) -> None:
        """A clean stop: the worker is no longer alive, say so at once."""
        try:
            self._client.delete(self._key)
        except (redis.ConnectionError, redis.TimeoutError):
            pass  # the key expires by itself
        finally:
            self._client.close()


class Heartbeat(DynamicSource[Any]):
    """An input that emits nothing and beats for its worker (see the module docstring)."""

    def __init__(self, redis_url: str, prefix: str, every_s: float) -> None:
        if every_s <= 0:
            raise ValueError("every_s must be positive")
        self.redis_url, self.prefix, self.every_s = redis_url, prefix, every_s

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Beat:
        client = no_retry_client(self.redis_url, SOCKET_TIMEOUT_S)
        return _Beat(client, self.prefix, self.every_s, worker_index, worker_count)


def heartbeat_ages(beats: list[bytes | None], now: float) -> list[float | None]:
    """Seconds since each beat (None: no beat, or one that cannot be read).

    >>> heartbeat_ages([beat_value(100.0, 0, 2), None, b"junk"], now=101.5)
    [1.5, None, None]
    """
    ages: list[float | None] = []
    for raw in beats:
        try:
            ages.append(now - float(orjson.loads(raw)["at"]) if raw else None)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            ages.append(None)
    return ages
