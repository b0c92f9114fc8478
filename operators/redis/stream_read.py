"""One bounded read of a stream partition, done inside Redis by a small read-only Lua script.

XREAD COUNT n returns n whole entries whatever their size: 1,000 entries of 5 MB would be 5 GB
in the worker (and in Redis's reply buffer). The script reads with XRANGE after the last id
instead and applies `tailor.operators.payload_limits` on the server:

- it stops before the payloads read add up to more than the byte budget (at least one entry
  is always returned, so a partition never stalls), and reads in chunks sized from the largest
  payload seen so far, so Redis itself does not materialise far more than the budget;
- a payload longer than `max_payload_bytes` comes back as its prefix plus its length and
  `redis.sha1hex` of it, so it never crosses the network nor sits in the worker;
- only the `payload` field is returned (other fields, however large, stay in Redis);
- on request it also reads XINFO STREAM's `length` and `entries-added` in the same atomic
  step, for the lag gauge (`tailor.operators.redis.source.LagCounter`), without XINFO's copies of
  the first and last entries crossing the network.

The script only reads, so it replicates nothing. It has no shebang so that Redis 6.2 (the
embedded server of `tailor demo`) runs it too; `(id` exclusive ranges need Redis 6.2+. Redis 7
runs such a script in compatibility mode, which refuses only writes, so reads go on while
Redis is out of memory. It is sent once per server (EVALSHA; redis-py loads it again after a
restart).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis

from tailor.operators.payload_limits import PayloadLimits

#: KEYS[1] stream; ARGV: last id read, max entries, byte budget, max payload bytes, prefix
#: bytes, "1" to sample XINFO. Reply: {drained, length, entries-added, ids, payloads, cuts},
#: cuts being flat (1-based index, whole length, sha1) triples; -1 where unknown.
READ_SCRIPT = """
local key, after = KEYS[1], ARGV[1]
local count, budget = tonumber(ARGV[2]), tonumber(ARGV[3])
local max_payload, prefix = tonumber(ARGV[4]), tonumber(ARGV[5])
local ids, payloads, cuts = {}, {}, {}
local n, used, largest, drained, full = 0, 0, 1, 0, false
local want = 1
while n < count and used < budget and not full do
  local entries = redis.call('XRANGE', key, '(' .. after, '+', 'COUNT', want)
  for _, entry in ipairs(entries) do
    local payload, fields = '', entry[2]
    for i = 1, #fields, 2 do
      if fields[i] == 'payload' then payload = fields[i + 1] end
    end
    local size = #payload
    if n > 0 and used + size > budget then
      full = true
      break
    end
    n, used, after = n + 1, used + size, entry[1]
    if size > largest then largest = size end
    ids[n] = after
    if size > max_payload then
      payloads[n] = string.sub(payload, 1, prefix)
      table.insert(cuts, n)
      table.insert(cuts, size)
      table.insert(cuts, redis.sha1hex(payload))
    else
      payloads[n] = payload
    end
  end
  if not full and #entries < want then
    drained = 1
    break
  end
  want = math.min(count - n, math.max(1, math.floor((budget - used) / largest)))
end
local length, added = -1, -1
if ARGV[6] == '1' then
  local info = redis.pcall('XINFO', 'STREAM', key)
  if type(info) == 'table' and info.err == nil then
    for i = 1, #info, 2 do
      if info[i] == 'length' then length = info[i + 1] end
      if info[i] == 'entries-added' then added = info[i + 1] end
    end
  end
end
return {drained, length, added, ids, payloads, cuts}
"""


@dataclass(frozen=True, slots=True)
class StreamInfo:
    """XINFO STREAM's counters, read atomically with a read; `added` is None before Redis 7."""

    length: int
    added: int | None


@dataclass(frozen=True, slots=True)
class StreamRead:
    """What one read returned, in stream order: entry ids and payloads as kept, and for each
    payload cut to its prefix (by index) its whole length and SHA-1 hex digest.

    `drained`: the read reached the end of the stream (neither the entry count nor the byte
    budget stopped it). `info`: the stream's counters when sampled, None when not asked for
    or when the stream does not exist.
    """

    ids: list[str]
    payloads: list[bytes]
    cuts: dict[int, tuple[int, str]]
    drained: bool
    info: StreamInfo | None


class BoundedStreamReader:
    """Reads of one stream through the script, registered once on `client`."""

    def __init__(self, client: redis.Redis, key: str, count: int, limits: PayloadLimits) -> None:
        self._script = client.register_script(READ_SCRIPT)
        self._key = key
        self._args = (count, limits.batch_max_bytes, limits.max_payload_bytes, limits.prefix_bytes)

    def read(self, after: str, sample: bool) -> StreamRead:
        """Up to the count and byte budget of entries after id `after`."""
        reply = self._script(keys=[self._key], args=[after, *self._args, int(sample)])
        return parse_reply(reply, sample)


def parse_reply(reply: Any, sampled: bool) -> StreamRead:
    """The script's reply as a `StreamRead`."""
    drained, length, added, ids, payloads, flat = reply
    cuts = {
        int(flat[i]) - 1: (int(flat[i + 1]), _text(flat[i + 2])) for i in range(0, len(flat), 3)
    }
    info = None
    if sampled and length >= 0:
        info = StreamInfo(int(length), int(added) if added >= 0 else None)
    return StreamRead([_text(i) for i in ids], list(payloads), cuts, bool(drained), info)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
