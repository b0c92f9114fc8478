"""Refused input into the dead-letter stream, raw payload untouched.

The payload is written as the exact bytes the source read (even when they are not UTF-8), so
an operator can inspect it and, once the producer is fixed, replay it. XADD is not idempotent:
a batch retried after a connection drop may add an entry twice (at-least-once), which is the
right trade for a stream people read, not count from. `tailor_dead_letters_total` is counted
by the step that refuses the input, not here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bytewax.outputs import DynamicSink, StatelessSinkPartition

from operators.keys import deadletter_stream
from operators.records import DeadLetter
from operators.retry import RetryingSinkSettings, Writer


class _DeadLetterPartition(StatelessSinkPartition[DeadLetter]):
    """One worker's connection; one pipelined round trip per batch."""

    def __init__(self, writer: Writer, stream: str, maxlen: int) -> None:
        self._writer = writer
        self._stream = stream
        self._maxlen = maxlen

    def write_batch(self, items: list[DeadLetter]) -> None:
        if items:
            self._writer.run("deadletter", lambda: self._send(items))

    def _send(self, letters: Sequence[DeadLetter]) -> None:
        pipe = self._writer.client.pipeline(transaction=False)
        for letter in letters:
            fields: dict[str | bytes, str | bytes] = {
                "reason": letter.reason,
                "detail": letter.detail,
                "payload": letter.payload,
                "origin": letter.origin,
                "offset": letter.offset,
            }
            if letter.size is not None:  # the payload is a prefix of this many bytes
                fields["size"] = str(letter.size)
            if letter.sha1 is not None:
                fields["sha1"] = letter.sha1
            pipe.xadd(self._stream, fields, maxlen=self._maxlen, approximate=True)  # type: ignore[arg-type]
        pipe.execute()

    def close(self) -> None:
        self._writer.client.close()


class DeadLetterSink(RetryingSinkSettings, DynamicSink[DeadLetter]):
    """Write `DeadLetter` items to ``{prefix}:deadletter`` (``MAXLEN ~ maxlen``).

    Retries like `operators.redis_sink.RedisSink` (`operators.retry`), counted under
    ``operation="deadletter"``; `max_attempts=0` retries for ever, otherwise past
    `max_attempts` it raises and recovery replays.
    `retry` takes the keyword arguments of `RetryingSinkSettings`.
    """

    def __init__(
        self, redis_url: str, prefix: str = "tailor", maxlen: int = 100_000, **retry: Any
    ) -> None:
        super().__init__(redis_url, **retry)
        self.prefix = prefix
        self.maxlen = maxlen

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _DeadLetterPartition:
        return _DeadLetterPartition(
            self.writer(worker_index), deadletter_stream(self.prefix), self.maxlen
        )
