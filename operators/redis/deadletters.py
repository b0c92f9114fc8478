"""Refused input into the dead-letter stream, raw payload untouched, each input once.

The payload is written as the exact bytes the source read (even when they are not UTF-8), so
an operator can inspect it and, once the producer is fixed, replay it.

Exactly once: Bytewax recovery replays what a killed worker read after its last snapshot, and
a batch is retried whole after a connection drop, so the same refusal reaches this sink again.
A letter is identified by where its input came from (`origin`, `offset`: stream key and entry
id, or file and line), and `LETTER_SCRIPT` writes it only if that identity is not in the
index ``{p}:deadletter:index`` already. Letters come from two places (validation on the
worker reading the partition, lateness on the user's worker) in no common order, so the
index holds identities, not a high-water mark. The script trims the stream itself and drops
the index entries of what it trimmed, so the index stays about as large as the stream.
`tailor_dead_letters_total` is counted by the step that refuses the input, not here;
`tailor_dead_letters_repeated_total` counts the letters skipped here as already written.
"""

from __future__ import annotations

__all__ = ["LETTER_FIELDS", "LETTER_SCRIPT", "DeadLetterSink", "identity", "letter_args"]

import dataclasses
from collections.abc import Sequence
from typing import Any

import orjson
from bytewax.outputs import DynamicSink, StatelessSinkPartition

from tailor.operators.metrics import DEAD_LETTERS_REPEATED
from tailor.operators.records import DeadLetter
from tailor.operators.redis.keys import deadletter_index, deadletter_stream
from tailor.operators.redis.retry import RetryingSinkSettings, Writer

#: The `DeadLetter` fields written to the stream, in order: every field but the batch stamp
#: (the letter's place in the dataflow, meaningless in Redis). A field whose value is None
#: is left out of that entry.
LETTER_FIELDS: tuple[str, ...] = tuple(
    f.name for f in dataclasses.fields(DeadLetter) if f.name != "stamp"
)

# KEYS: 1 dead-letter stream, 2 index (sorted set: identity -> milliseconds of its entry id).
# ARGV: 1 MAXLEN (approximate, as XTRIM ~), then per letter: its identity, the number n of
#       field/value pairs, and the n pairs.
# Returns the number of letters written (the others were already there).
# Both keys are declared, but they hash to different slots: single-instance Redis only, like
# the sink's other scripts (`tailor.operators.redis.scripts`).
# An emptied stream (deleted, or every entry erased) empties its index first. Trimming
# removes whole stream nodes (~), then the index entries older than the first entry left;
# the few that share its millisecond go on a later trim, so the index can exceed the stream
# by at most one millisecond's entries plus entries erased from the middle.
LETTER_SCRIPT = """
local stream, index = KEYS[1], KEYS[2]
if redis.call('XLEN', stream) == 0 then redis.call('DEL', index) end
local written, i = 0, 2
while i <= #ARGV do
  local id, n = ARGV[i], tonumber(ARGV[i + 1])
  if not redis.call('ZSCORE', index, id) then
    local entry = redis.call('XADD', stream, '*', unpack(ARGV, i + 2, i + 1 + 2 * n))
    redis.call('ZADD', index, tonumber(string.match(entry, '^%d+')), id)
    written = written + 1
  end
  i = i + 2 + 2 * n
end
if written > 0 and redis.call('XTRIM', stream, 'MAXLEN', '~', ARGV[1]) > 0 then
  local first = redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)[1]
  if first then
    redis.call('ZREMRANGEBYSCORE', index, '-inf', '(' .. string.match(first[1], '^%d+'))
  else
    redis.call('DEL', index)
  end
end
return written
"""


def identity(letter: DeadLetter) -> bytes:
    """What makes two letters the same refusal: the place of the input, `[origin, offset]`
    as JSON (unambiguous whatever either contains)."""
    return orjson.dumps([letter.origin, letter.offset])


def letter_args(letter: DeadLetter) -> list[Any]:
    """The letter's part of the script's ARGV: identity, pair count, field/value pairs."""
    pairs: list[Any] = []
    for name in LETTER_FIELDS:
        value = getattr(letter, name)
        if value is not None:
            pairs += [name, value]
    return [identity(letter), len(pairs) // 2, *pairs]


class _DeadLetterPartition(StatelessSinkPartition[DeadLetter]):
    """One worker's connection; one script call per batch."""

    def __init__(self, writer: Writer, prefix: str, maxlen: int) -> None:
        self._writer = writer
        self._keys = [deadletter_stream(prefix), deadletter_index(prefix)]
        self._maxlen = maxlen
        self._script = writer.client.register_script(LETTER_SCRIPT)

    def write_batch(self, items: list[DeadLetter]) -> None:
        if items:
            written = self._writer.run("deadletter", lambda: self._send(items))
            DEAD_LETTERS_REPEATED.inc(len(items) - written)

    def _send(self, letters: Sequence[DeadLetter]) -> int:
        """Safe to repeat whole: a letter already written is skipped."""
        args: list[Any] = [self._maxlen]
        for letter in letters:
            args += letter_args(letter)
        return int(self._script(keys=self._keys, args=args))

    def close(self) -> None:
        self._writer.client.close()


class DeadLetterSink(RetryingSinkSettings, DynamicSink[DeadLetter]):
    """Write `DeadLetter` items to ``{prefix}:deadletter`` (``MAXLEN ~ maxlen``), each
    input's refusal once however often it is replayed (see the module docstring).

    Retries like `tailor.operators.redis.sink.RedisSink` (`tailor.operators.redis.retry`), counted
    under
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
        return _DeadLetterPartition(self.writer(worker_index), self.prefix, self.maxlen)
