"""Read user events from Redis Streams: one Bytewax partition per stream key.

The producer routes each user to one stream (`operators.routing`), so one partition sees a
user's events in order. The public source holds configuration only; each partition's
position comes from its resume state, the id of the last entry it returned, which is exactly
what XREAD takes ("entries after this id"): a resumed partition continues after its
snapshot, never re-reading nor skipping an entry.

The worker is never blocked: XREAD runs without BLOCK, an idle read returns `[]` and asks to
be woken after `poll_interval_s`, and a Redis outage is counted and retried with capped
exponential backoff instead of crashing the dataflow.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from operators import lifecycle
from operators.metrics import REDIS_ERRORS, SOURCE_BATCH
from operators.records import RawRecord
from operators.routing import stream_key

START_ID = "0-0"
BACKOFF_BASE_S = 0.1
BACKOFF_CAP_S = 5.0
_PAYLOAD = b"payload"


def _client(redis_url: str) -> redis.Redis:
    """A client that fails fast: our backoff replaces redis-py's in-call retries, which sleep.

    One immediate retry still heals a pooled connection that a Redis restart closed.
    """
    return redis.Redis.from_url(
        redis_url,
        decode_responses=False,
        socket_connect_timeout=2.0,
        socket_timeout=5.0,
        retry=Retry(NoBackoff(), 1),
    )


def backoff_s(failures: int) -> float:
    """Delay before the next read after `failures` consecutive errors.

    >>> [backoff_s(n) for n in (1, 2, 3, 7, 50)]
    [0.1, 0.2, 0.4, 5.0, 5.0]
    """
    return min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** min(failures - 1, 32))


def _entries(reply: Any) -> list[Any]:
    """The (id, fields) pairs of a one-stream XREAD reply, RESP2 (list) or RESP3 (dict)."""
    if not reply:
        return []
    if isinstance(reply, dict):
        return list(next(iter(reply.values())))
    return list(reply[0][1])


def _payload(fields: Any) -> bytes:
    """The payload field, or b"" when missing so that validation dead-letters the entry."""
    value = fields.get(_PAYLOAD, b"") if isinstance(fields, dict) else b""
    return value if isinstance(value, bytes) else str(value).encode()


def _text(entry_id: Any) -> str:
    return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)


class _RedisStreamPartition(StatefulSourcePartition[RawRecord, str]):
    def __init__(
        self,
        client: redis.Redis,
        key: str,
        last_id: str,
        batch_size: int,
        poll_interval_s: float,
        stop_when_drained: bool,
    ) -> None:
        self._client = client
        self._key = key
        self._last_id = last_id
        self._batch_size = batch_size
        self._poll = timedelta(seconds=poll_interval_s)
        self._stop_when_drained = stop_when_drained
        self._failures = 0
        self._awake: datetime | None = None

    def next_batch(self) -> list[RawRecord]:
        if lifecycle.stop_requested():
            raise StopIteration
        try:
            reply = self._client.xread({self._key: self._last_id}, count=self._batch_size)
        except (RedisConnectionError, RedisTimeoutError) as exc:
            REDIS_ERRORS.labels("read", type(exc).__name__).inc()
            self._failures += 1
            self._awake = datetime.now(UTC) + timedelta(seconds=backoff_s(self._failures))
            return []
        self._failures = 0
        entries = _entries(reply)
        if not entries:
            if self._stop_when_drained:
                raise StopIteration
            self._awake = datetime.now(UTC) + self._poll
            return []
        self._awake = None
        read_at = time.time()
        batch = [
            RawRecord(_payload(fields), self._key, _text(entry_id), read_at)
            for entry_id, fields in entries
        ]
        self._last_id = batch[-1].offset
        SOURCE_BATCH.labels("redis").observe(len(batch))
        return batch

    def next_awake(self) -> datetime | None:
        return self._awake

    def snapshot(self) -> str:
        return self._last_id

    def close(self) -> None:
        self._client.close()


class RedisStreamSource(FixedPartitionedSource[RawRecord, str]):
    """Events from the streams `{prefix}:events:{0..partitions-1}`, each a partition.

    :arg stop_when_drained: end a partition at its first empty read (replays and tests);
        otherwise partitions poll for ever, until `lifecycle.request_stop()`.

    Entries without a `payload` field still become records (with an empty payload) so that
    validation dead-letters them: an input is never lost silently. Only non-empty reads are
    observed in the batch-size histogram; idle polls would drown it in zeros.
    """

    def __init__(
        self,
        redis_url: str,
        prefix: str = "tailor",
        partitions: int = 4,
        batch_size: int = 1000,
        poll_interval_s: float = 0.05,
        stop_when_drained: bool = False,
    ) -> None:
        self.redis_url = redis_url
        self.prefix = prefix
        self.partitions = partitions
        self.batch_size = batch_size
        self.poll_interval_s = poll_interval_s
        self.stop_when_drained = stop_when_drained

    def list_parts(self) -> list[str]:
        return [stream_key(self.prefix, p) for p in range(self.partitions)]

    def build_part(
        self, step_id: str, for_part: str, resume_state: str | None
    ) -> _RedisStreamPartition:
        return _RedisStreamPartition(
            _client(self.redis_url),
            for_part,
            START_ID if resume_state is None else resume_state,
            self.batch_size,
            self.poll_interval_s,
            self.stop_when_drained,
        )
