"""Refused input into the dead-letter stream, raw payload untouched.

The payload is written as the exact bytes the source read (even when they are not UTF-8), so
an operator can inspect it and, once the producer is fixed, replay it. XADD is not idempotent:
a batch retried after a connection drop may add an entry twice (at-least-once), which is the
right trade for a stream people read, not count from. `tailor_dead_letters_total` is counted
by the step that refuses the input, not here.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence

import redis
from bytewax.outputs import DynamicSink, StatelessSinkPartition

from operators.keys import deadletter_stream
from operators.records import DeadLetter
from operators.retry import RetryPolicy, call_with_retry, no_retry_client


class _DeadLetterPartition(StatelessSinkPartition[DeadLetter]):
    """One worker's connection; one pipelined round trip per batch."""

    def __init__(
        self,
        client: redis.Redis,
        stream: str,
        maxlen: int,
        policy: RetryPolicy,
        rng: random.Random,
        sleep: Callable[[float], None],
    ) -> None:
        self._client = client
        self._stream = stream
        self._maxlen = maxlen
        self._policy = policy
        self._rng = rng
        self._sleep = sleep

    def write_batch(self, items: list[DeadLetter]) -> None:
        if items:
            call_with_retry(
                lambda: self._send(items), "deadletter", self._policy, self._rng, self._sleep
            )

    def _send(self, letters: Sequence[DeadLetter]) -> None:
        pipe = self._client.pipeline(transaction=False)
        for letter in letters:
            fields: dict[str | bytes, str | bytes] = {
                "reason": letter.reason,
                "detail": letter.detail,
                "payload": letter.payload,
                "origin": letter.origin,
                "offset": letter.offset,
            }
            pipe.xadd(self._stream, fields, maxlen=self._maxlen, approximate=True)  # type: ignore[arg-type]
        pipe.execute()

    def close(self) -> None:
        self._client.close()


class DeadLetterSink(DynamicSink[DeadLetter]):
    """Write `DeadLetter` items to ``{prefix}:deadletter`` (``MAXLEN ~ maxlen``).

    Retries like `operators.redis_sink.RedisSink` (shared `operators.retry`), counted under
    ``operation="deadletter"``; past `max_attempts` it raises and recovery replays.
    """

    def __init__(
        self,
        redis_url: str,
        prefix: str = "tailor",
        maxlen: int = 100_000,
        max_attempts: int = 8,
        backoff_base_s: float = 0.05,
        backoff_cap_s: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
        seed: int = 0,
        socket_timeout_s: float = 5.0,
    ) -> None:
        self.redis_url = redis_url
        self.prefix = prefix
        self.maxlen = maxlen
        self.policy = RetryPolicy(max_attempts, backoff_base_s, backoff_cap_s)
        self.sleep = sleep
        self.seed = seed
        self.socket_timeout_s = socket_timeout_s

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _DeadLetterPartition:
        return _DeadLetterPartition(
            no_retry_client(self.redis_url, self.socket_timeout_s),
            deadletter_stream(self.prefix),
            self.maxlen,
            self.policy,
            random.Random(self.seed * 65_536 + worker_index),
            self.sleep,
        )
