"""Read user events from Redis Streams: one Bytewax partition per stream key.

The producer routes each user to one stream (`tailor.operators.redis.routing`), so one partition
sees a user's events in order. The public source holds configuration only; each partition's
position comes from its resume state, the id of the last entry it returned, which is exactly
what XREAD takes ("entries after this id"): a resumed partition continues after its
snapshot, never re-reading nor skipping an entry. The resume state also holds the number of
batches stamped (`tailor.operators.progress`); a partition with nothing to read announces it once
(`IDLE`), or its end (`END`) when it stops at the first empty read.

Each read is bounded in entries (`batch_size`) and in bytes (`source.batch_max_bytes`), and a
payload longer than `validation.max_payload_bytes` arrives as a prefix with its length and
hash: the read runs as a script inside Redis (`tailor.operators.redis.stream_read`), so memory stays
flat however large the entries a producer writes.

The worker is never blocked: reads do not wait for entries, an idle read returns `[]` and
asks to be woken after `poll_interval_s`, and a Redis outage is counted and retried with
capped exponential backoff instead of crashing the dataflow.

Consumer lag (`tailor_source_lag_entries{stream}`) is sampled by reading XINFO STREAM's
counters in the same script as a read, at most every `lag_interval_s` per partition. Reads have no
cursor on the server, so the partition counts what it consumed in Redis 7's `entries-added`
units: exact while no unread entry is deleted, and re-anchored to 0 whenever a read drains
the stream.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import redis
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from tailor.operators import lifecycle
from tailor.operators.metrics import REDIS_ERRORS, SOURCE_BATCH, SOURCE_LAG
from tailor.operators.payload_limits import PayloadLimits
from tailor.operators.progress import BatchStamper
from tailor.operators.records import RawRecord
from tailor.operators.redis.keys import stream_key
from tailor.operators.redis.retry import mark_redis_up
from tailor.operators.redis.stream_read import BoundedStreamReader, StreamInfo, StreamRead

START_ID = "0-0"
BACKOFF_BASE_S = 0.1
BACKOFF_CAP_S = 5.0
#: redis-py's capped exponential backoff, without jitter: one reader per partition.
_BACKOFF = ExponentialBackoff(cap=BACKOFF_CAP_S, base=BACKOFF_BASE_S)
LAG_INTERVAL_S = 5.0
_WHOLE: tuple[None, None] = (None, None)

#: The last entry id returned, and the number of batches stamped.
StreamState = tuple[str, int]


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
    return _BACKOFF.compute(min(failures - 1, 32))


class LagCounter:
    """A partition's position in `entries-added` units, hence its lag, without a server cursor.

    `position` is how many entries ever added to the stream lie at or before the last id read.
    It is unknown for a partition resumed from a snapshot until a read drains the stream (then
    it is `entries-added` exactly); a partition that starts from the beginning knows it at its
    first sample, since its reads are then the first entries present. Before Redis 7 (no
    `entries-added`) the stream length stands in: exact for streams that are never trimmed.
    """

    def __init__(self, from_start: bool) -> None:
        self.position: int | None = None
        self.from_start = from_start

    def consumed(self, n: int) -> None:
        if self.position is not None:
            self.position += n

    def sample(self, n: int, drained: bool, info: StreamInfo | None) -> int | None:
        """The lag right after a read of `n` entries that `drained` the stream or not, given
        the stream's counters taken atomically with it (None: no such stream); None when
        unknown."""
        from_start, self.from_start = self.from_start, False
        self.consumed(n)
        if info is None:  # no such stream: nothing to read, and it counts from 0 if created
            if from_start:
                self.position = 0
            return 0
        length = info.length
        added = length if info.added is None else info.added
        if drained:  # the read took everything there was
            self.position = added
            return 0
        if self.position is None and from_start:  # the n read are the first n present
            self.position = added - (length - n)
        if self.position is None:
            return None
        return max(0, added - self.position)


class _RedisStreamPartition(StatefulSourcePartition[RawRecord, StreamState]):
    def __init__(
        self,
        client: redis.Redis,
        key: str,
        resume: StreamState,
        batch_size: int,
        poll_interval_s: float,
        stop_when_drained: bool,
        lag_interval_s: float = LAG_INTERVAL_S,
        *,
        limits: PayloadLimits,
    ) -> None:
        self._client = client
        self._reader = BoundedStreamReader(client, key, batch_size, limits)
        self._key = key
        last_id, seq = resume
        self._last_id = last_id
        self._stamper = BatchStamper(key, seq)
        self._ended = False
        self._poll = timedelta(seconds=poll_interval_s)
        self._stop_when_drained = stop_when_drained
        self._failures = 0
        self._awake: datetime | None = None
        self._lag = LagCounter(from_start=last_id == START_ID)
        self._lag_interval_s = lag_interval_s
        self._next_sample = time.monotonic()  # the first read samples

    def next_batch(self) -> list[RawRecord]:
        if lifecycle.stop_requested() or self._ended:
            raise StopIteration
        try:
            read = self._read()
        except (RedisConnectionError, RedisTimeoutError) as exc:
            REDIS_ERRORS.labels("read", type(exc).__name__).inc()
            mark_redis_up("read", exc)
            self._failures += 1
            self._awake = datetime.now(UTC) + timedelta(seconds=backoff_s(self._failures))
            return []
        mark_redis_up("read")
        self._failures = 0
        if not read.ids:
            return self._ran_dry()
        self._awake = None
        batch = self._records(read, time.time())
        self._last_id = batch[-1].offset
        SOURCE_BATCH.labels("redis").observe(len(batch))
        return batch

    def _records(self, read: StreamRead, read_at: float) -> list[RawRecord]:
        """The read's entries as one stamped batch (the common case, nothing cut, first)."""
        key, stamp, cuts = self._key, self._stamper.data(len(read.ids)), read.cuts
        pairs = zip(read.ids, read.payloads, strict=True)
        if not cuts:
            return [
                RawRecord(payload, key, entry_id, read_at, stamp) for entry_id, payload in pairs
            ]
        return [
            RawRecord(payload, key, entry_id, read_at, stamp, *cuts.get(i, _WHOLE))
            for i, (entry_id, payload) in enumerate(pairs)
        ]

    def _ran_dry(self) -> list[RawRecord]:
        """Announce the end (then stop) or, once per dry spell, idleness; then poll again."""
        if self._stop_when_drained:
            self._ended = True
            return [self._stamper.end(time.time())]
        self._awake = datetime.now(UTC) + self._poll
        idle = self._stamper.idle(time.time())
        return [] if idle is None else [idle]

    def _read(self) -> StreamRead:
        """One bounded read; every `lag_interval_s` it also samples the lag."""
        now = time.monotonic()
        sample = now >= self._next_sample
        read = self._reader.read(self._last_id, sample)
        if not sample:
            self._lag.consumed(len(read.ids))
            return read
        lag = self._lag.sample(len(read.ids), read.drained, read.info)
        if lag is not None:
            SOURCE_LAG.labels(self._key).set(lag)
        self._next_sample = now + self._lag_interval_s
        return read

    def next_awake(self) -> datetime | None:
        return self._awake

    def snapshot(self) -> StreamState:
        return (self._last_id, self._stamper.seq)

    def close(self) -> None:
        self._client.close()


class RedisStreamSource(FixedPartitionedSource[RawRecord, StreamState]):
    """Events from the streams `{prefix}:events:{0..partitions-1}`, each a partition.

    :arg stop_when_drained: end a partition at its first empty read (replays and tests);
        otherwise partitions poll for ever, until `lifecycle.request_stop()`.
    :arg lag_interval_s: how often each partition samples `tailor_source_lag_entries`
        (0: every read).

    Entries without a `payload` field still become records (with an empty payload) so that
    validation dead-letters them: an input is never lost silently. Only non-empty reads are
    observed in the batch-size histogram; idle polls would drown it in zeros.
    `limits` bounds each read in bytes and cuts oversized payloads
    (`tailor.operators.redis.stream_read`).
    """

    def __init__(
        self,
        redis_url: str,
        prefix: str = "tailor",
        partitions: int = 4,
        batch_size: int = 1000,
        poll_interval_s: float = 0.05,
        stop_when_drained: bool = False,
        lag_interval_s: float = LAG_INTERVAL_S,
        *,
        limits: PayloadLimits,
    ) -> None:
        self.redis_url = redis_url
        self.prefix = prefix
        self.partitions = partitions
        self.batch_size = batch_size
        self.poll_interval_s = poll_interval_s
        self.stop_when_drained = stop_when_drained
        self.lag_interval_s = lag_interval_s
        self.limits = limits

    def list_parts(self) -> list[str]:
        return [stream_key(self.prefix, p) for p in range(self.partitions)]

    def build_part(
        self, step_id: str, for_part: str, resume_state: StreamState | str | None
    ) -> StatefulSourcePartition[RawRecord, StreamState]:
        if resume_state is None or isinstance(resume_state, str):  # str: before batch stamps
            resume_state = (resume_state or START_ID, 0)
        return _RedisStreamPartition(
            _client(self.redis_url),
            for_part,
            resume_state,
            self.batch_size,
            self.poll_interval_s,
            self.stop_when_drained,
            self.lag_interval_s,
            limits=self.limits,
        )
