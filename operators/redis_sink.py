"""Profiles, recommendations, segment memberships and change notices into Redis.

Each `write_batch` is one pipelined round trip (plus the `SCRIPT EXISTS` check redis-py's
`register_script` makes per pipeline): the batch is coalesced to the newest output per user,
and every user becomes one call of a Lua script inside a non-transactional pipeline. The
script is the unit of consistency: it compares versions, moves the user between segment sets,
writes profile and recs, and publishes the notice, all atomically. So:

* a replayed older write (Bytewax recovery is at-least-once) is a no-op: it can never move a
  user backwards, and a replay of the same input leaves byte-identical keys;
* a notice is sent exactly when a write applies, even if the batch is retried after a
  connection drop (the retried script sees the newer version and stays silent);
* readers never see a profile whose memberships or recs are from another version.

The schema itself is documented in `operators.keys`.
"""

from __future__ import annotations

import bisect
import math
import time
from collections.abc import Iterable, Sequence
from typing import Any

import orjson
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from prometheus_client import Histogram

from operators.control import control_key
from operators.erasure import ERASE_SCRIPT, delete_mentions
from operators.keys import model_key, recs_key, segments_key, updates_stream, user_key
from operators.metrics import (
    EVENT_TIME_TO_REDIS,
    EVENT_TO_REDIS,
    SEGMENT_MOVES,
    SEGMENT_SIZE,
    SINK_BATCH,
)
from operators.records import Erasure, SegmentInfo, SegmentModel, UserOutput
from operators.retry import RetryingSinkSettings, Writer

JSON_OPTS = orjson.OPT_SORT_KEYS | orjson.OPT_SERIALIZE_NUMPY

#: Hash fields the sink owns; profile entries may not use these names.
RESERVED_FIELDS = (
    "version",
    "updated_at",
    "segment",
    "segment_name",
    "rfm_segment",
    "rule_segments",
)

# Single-instance Redis only, not Redis Cluster: segment sets and the updates channel/stream
# are named inside the script from the prefix instead of being declared in KEYS.
# KEYS: 1 user hash, 2 recs key.
# ARGV: 1 prefix, 2 user id, 3 version, 4 recs items JSON, 5 notice head (a JSON object
#       without "changed" and the closing brace), 6 updates stream MAXLEN, 7 event-time hour
#       of the write (epoch hours), 8.. hash field/value pairs (every value JSON).
# Returns false when the stored version is not older, else
# {changed, {segment, size, ...}, moved (1 when the user changed cluster segment)}.
USER_SCRIPT = """
local user_key, recs_key = KEYS[1], KEYS[2]
local prefix, uid, version, items = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local stored = redis.call('HGET', user_key, 'version')
if stored and tonumber(stored) >= tonumber(version) then
  return false
end
local RESERVED = {version = true, updated_at = true, segment = true,
                  segment_name = true, rfm_segment = true, rule_segments = true}
local old, new, names = {}, {}, {}
local flat = redis.call('HGETALL', user_key)
for i = 1, #flat, 2 do old[flat[i]] = flat[i + 1] end
for i = 8, #ARGV, 2 do
  new[ARGV[i]] = ARGV[i + 1]
  names[#names + 1] = ARGV[i]
end

-- Segment ids the user belongs to: the cluster segment, 'rfm:<tier>' and 'rule:<name>' per rule.
local function memberships(fields)
  local ids = {}
  if fields['segment'] then
    local segment = cjson.decode(fields['segment'])
    if type(segment) == 'string' and segment ~= '' then ids[#ids + 1] = segment end
  end
  if fields['rfm_segment'] then
    local tier = cjson.decode(fields['rfm_segment'])
    if type(tier) == 'string' and tier ~= '' then ids[#ids + 1] = 'rfm:' .. tier end
  end
  if fields['rule_segments'] then
    for _, name in ipairs(cjson.decode(fields['rule_segments'])) do
      ids[#ids + 1] = 'rule:' .. name
    end
  end
  return ids
end
local function as_set(list)
  local set = {}
  for _, v in ipairs(list) do set[v] = true end
  return set
end
local before, after = memberships(old), memberships(new)
local in_before, in_after = as_set(before), as_set(after)
local touched = {}
for _, id in ipairs(before) do
  if not in_after[id] then
    redis.call('SREM', prefix .. ':segment:' .. id, uid)
    touched[#touched + 1] = id
  end
end
for _, id in ipairs(after) do
  if not in_before[id] then
    redis.call('SADD', prefix .. ':segment:' .. id, uid)
    touched[#touched + 1] = id
  end
end

local profile_changed = false
for _, name in ipairs(names) do
  if not RESERVED[name] and old[name] ~= new[name] then profile_changed = true end
end
local stale = {}
for name, _ in pairs(old) do
  if new[name] == nil then
    stale[#stale + 1] = name
    if not RESERVED[name] then profile_changed = true end
  end
end
table.sort(stale)
local recs_suffix = ',"items":' .. items .. '}'
local old_recs = redis.call('GET', recs_key)
local changed = {}
if profile_changed then changed[#changed + 1] = 'profile' end
if old['segment'] ~= new['segment'] or old['segment_name'] ~= new['segment_name'] then
  changed[#changed + 1] = 'segment'
end
if (old['rfm_segment'] or '""') ~= new['rfm_segment'] then changed[#changed + 1] = 'rfm_segment' end
if old['rule_segments'] ~= new['rule_segments'] then changed[#changed + 1] = 'rule_segments' end
if not old_recs or string.sub(old_recs, -#recs_suffix) ~= recs_suffix then
  changed[#changed + 1] = 'recs'
end

if #stale > 0 then redis.call('HDEL', user_key, unpack(stale)) end
redis.call('HSET', user_key, unpack(ARGV, 8))
redis.call('SET', recs_key, '{"version":' .. version .. recs_suffix)

local quoted = {}
for i, part in ipairs(changed) do quoted[i] = '"' .. part .. '"' end
local notice = ARGV[5] .. ',"changed":[' .. table.concat(quoted, ',') .. ']}'
redis.call('PUBLISH', prefix .. ':updates', notice)
redis.call('XADD', prefix .. ':updates', 'MAXLEN', '~', ARGV[6], '*', 'notice', notice)

local sizes = {}
for _, id in ipairs(touched) do
  local size = redis.call('SCARD', prefix .. ':segment:' .. id)
  sizes[#sizes + 1] = id
  sizes[#sizes + 1] = size
  redis.call('HSET', prefix .. ':segments:model', 'size:' .. id, size)
end

-- Churn: a user whose stored cluster segment changed, counted per event-time hour.
local moved = 0
local old_segment = old['segment'] and cjson.decode(old['segment']) or ''
local new_segment = new['segment'] and cjson.decode(new['segment']) or ''
if old_segment ~= '' and new_segment ~= '' and old_segment ~= new_segment then
  moved = 1
  local churn = prefix .. ':segments:churn'
  local hour = tonumber(ARGV[7])
  local current = tonumber(redis.call('HGET', churn, 'hour') or '-1')
  if hour == current then
    redis.call('HINCRBY', churn, 'moves', 1)
  elseif hour > current then
    local moves = redis.call('HGET', churn, 'moves') or '0'
    redis.call('HSET', churn, 'previous_hour', current, 'previous_moves', moves,
               'hour', hour, 'moves', 1)
  elseif hour == tonumber(redis.call('HGET', churn, 'previous_hour') or '-1') then
    redis.call('HINCRBY', churn, 'previous_moves', 1)
  end
end
return {changed, sizes, moved}
"""

# KEYS: 1 model key. ARGV: 1 version, 2 JSON record. Newer versions only.
MODEL_SCRIPT = """
local stored = redis.call('HGET', KEYS[1], 'version')
if stored and tonumber(stored) >= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'version', ARGV[1], 'record', ARGV[2])
return 1
"""

# KEYS: 1 segments hash. ARGV: 1 segment id, 2 version, 3 JSON value. Same version guard.
SEGMENT_SCRIPT = """
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old then
  local ok, decoded = pcall(cjson.decode, old)
  if ok and type(decoded) == 'table' and tonumber(decoded['version'])
     and tonumber(decoded['version']) >= tonumber(ARGV[2]) then
    return 0
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1
"""


def newest_per_user(outputs: Iterable[UserOutput]) -> list[UserOutput]:
    """One output per user, the highest version (the later one on a tie), first-seen order.

    Older outputs of the same user add nothing to Redis: the newest already reflects them.
    """
    newest: dict[str, UserOutput] = {}
    for out in outputs:
        current = newest.get(out.user_id)
        if current is None or out.version >= current.version:
            newest[out.user_id] = out
    return list(newest.values())


def newest_per_segment(infos: Iterable[SegmentInfo]) -> list[SegmentInfo]:
    """One description per segment, the highest version."""
    newest: dict[str, SegmentInfo] = {}
    for info in infos:
        current = newest.get(info.segment)
        if current is None or info.version >= current.version:
            newest[info.segment] = info
    return list(newest.values())


def dumps(value: Any) -> bytes:
    """Byte-stable JSON: sorted keys, so a replay writes the same bytes."""
    return orjson.dumps(value, option=JSON_OPTS)


def hash_fields(out: UserOutput) -> list[bytes | str]:
    """The profile hash as flat field/value pairs: reserved fields first, then the profile."""
    clash = sorted(set(RESERVED_FIELDS) & out.profile.keys())
    if clash:
        raise ValueError(f"profile of {out.user_id!r} uses reserved field names {clash}")
    rules = sorted(set(out.rule_segments))
    pairs: list[bytes | str] = [
        "version",
        dumps(out.version),
        "updated_at",
        dumps(out.updated_at),
        "segment",
        dumps(out.segment),
        "segment_name",
        dumps(out.segment_name),
        "rfm_segment",
        dumps(out.rfm_segment),
        "rule_segments",
        dumps(rules),
    ]
    for name in sorted(out.profile):
        pairs += [name, dumps(out.profile[name])]
    return pairs


def notice_head(out: UserOutput) -> bytes:
    """The notice without its "changed" list, which only the script knows."""
    rules = dumps(sorted(set(out.rule_segments)))
    return b'{"user_id":%s,"version":%d,"segment":%s,"rule_segments":%s' % (
        dumps(out.user_id),
        out.version,
        dumps(out.segment),
        rules,
    )


def recs_items(out: UserOutput) -> bytes:
    return dumps([{"item_id": r.item_id, "score": r.score, "source": r.source} for r in out.recs])


def observe_many(histogram: Histogram, values: Sequence[float]) -> None:
    """`histogram.observe` each value, with one locked increment per touched bucket.

    Two observations per event made `observe` (a Python walk over the buckets and two locks
    per call) one of the sink's largest costs. This reads the client's bucket list, as
    `observe` does; should a prometheus-client release rename it, it falls back to `observe`.
    """
    bounds = getattr(histogram, "_upper_bounds", None)
    buckets = getattr(histogram, "_buckets", None)
    total = getattr(histogram, "_sum", None)
    if bounds is None or buckets is None or total is None or len(bounds) != len(buckets):
        for value in values:
            histogram.observe(value)
        return
    counts = [0] * len(bounds)
    for value in values:
        if value <= bounds[-1]:  # always, bar NaN, which `observe` puts in no bucket either
            counts[bisect.bisect_left(bounds, value)] += 1
    for bucket, count in zip(buckets, counts, strict=True):
        if count:
            bucket.inc(count)
    if values:
        total.inc(math.fsum(values))


SinkItem = UserOutput | SegmentInfo | SegmentModel | Erasure


class _RedisSinkPartition(StatelessSinkPartition[SinkItem]):
    """One worker's connection and scripts; holds no state worth snapshotting."""

    def __init__(self, writer: Writer, prefix: str, updates_maxlen: int) -> None:
        self._writer = writer
        self._client = client = writer.client
        self._prefix = prefix
        self._updates_maxlen = updates_maxlen
        self._user_script = client.register_script(USER_SCRIPT)
        self._segment_script = client.register_script(SEGMENT_SCRIPT)
        self._model_script = client.register_script(MODEL_SCRIPT)
        self._erase_script = client.register_script(ERASE_SCRIPT)

    def write_batch(self, items: list[SinkItem]) -> None:
        erasures = [item for item in items if isinstance(item, Erasure)]
        if erasures:
            self._writer.run("erase", lambda: self._erase(erasures))
            items = after_last_erasure(items)
        outputs = [item for item in items if isinstance(item, UserOutput)]
        users = newest_per_user(outputs)
        infos = newest_per_segment(item for item in items if isinstance(item, SegmentInfo))
        models = [item for item in items if isinstance(item, SegmentModel)]
        model = max(models, key=lambda m: m.version) if models else None
        if not users and not infos and model is None:
            return
        results = self._writer.run("write", lambda: self._send(users, infos, model))
        self._observe(outputs, len(users), results[: len(users)])

    def _erase(self, erasures: Sequence[Erasure]) -> None:
        """Delete what Redis holds about each user, then their past notices."""
        pipe = self._client.pipeline(transaction=False)
        for erasure in erasures:
            user = erasure.user_id
            self._erase_script(
                keys=[user_key(self._prefix, user), recs_key(self._prefix, user)],
                args=[self._prefix, user, erasure.reason],
                client=pipe,
            )
        pipe.execute()
        gone = {erasure.user_id for erasure in erasures}
        delete_mentions(self._client, updates_stream(self._prefix), b"notice", gone)
        # The request itself is done; an opt-out stays on record in the opt-out set only.
        delete_mentions(self._client, control_key(self._prefix), b"payload", gone)

    def _send(
        self,
        users: Sequence[UserOutput],
        infos: Sequence[SegmentInfo],
        model: SegmentModel | None,
    ) -> list[Any]:
        """One round trip; safe to repeat whole, since every script is version-guarded."""
        pipe = self._client.pipeline(transaction=False)
        for out in users:
            self._user_script(
                keys=[user_key(self._prefix, out.user_id), recs_key(self._prefix, out.user_id)],
                args=[
                    self._prefix,
                    out.user_id,
                    out.version,
                    recs_items(out),
                    notice_head(out),
                    self._updates_maxlen,
                    int(out.updated_at // 3600),
                    *hash_fields(out),
                ],
                client=pipe,
            )
        for info in infos:
            value = {
                "name": info.name,
                "centroid": info.centroid,
                "version": info.version,
                "changed_at": info.changed_at,
            }
            self._segment_script(
                keys=[segments_key(self._prefix)],
                args=[info.segment, info.version, dumps(value)],
                client=pipe,
            )
        if model is not None:
            self._model_script(
                keys=[model_key(self._prefix)],
                args=[model.version, dumps(model.record)],
                client=pipe,
            )
        return list(pipe.execute())

    def _observe(self, outputs: Sequence[UserOutput], users: int, results: list[Any]) -> None:
        """Metrics after Redis acknowledged: latency counts every event the batch reflects."""
        now = time.time()
        observe_many(EVENT_TO_REDIS, [now - t for out in outputs for t in out.read_ats])
        observe_many(EVENT_TIME_TO_REDIS, [now - t for out in outputs for t in out.event_times])
        if users:
            SINK_BATCH.observe(users)
        for result in results:
            if result is None:  # stale: an older replay, nothing written
                continue
            sizes = result[1]
            for i in range(0, len(sizes), 2):
                SEGMENT_SIZE.labels(sizes[i].decode()).set(sizes[i + 1])
            if result[2]:
                SEGMENT_MOVES.inc()

    def close(self) -> None:
        self._client.close()


def after_last_erasure(items: Sequence[SinkItem]) -> list[SinkItem]:
    """The items still to write once erasures ran: a user's outputs from before their last
    erasure in the batch are dropped (they describe someone who asked to be forgotten)."""
    last = {item.user_id: i for i, item in enumerate(items) if isinstance(item, Erasure)}
    return [
        item
        for i, item in enumerate(items)
        if not isinstance(item, Erasure)
        and not (isinstance(item, UserOutput) and last.get(item.user_id, -1) > i)
    ]


class RedisSink(RetryingSinkSettings, DynamicSink[SinkItem]):
    """Write `UserOutput` and `SegmentInfo` items to Redis (schema: `operators.keys`).

    Transient Redis errors (connection, timeout, loading) retry the whole batch with capped,
    jittered exponential backoff; `max_attempts=0` retries for ever (the blocked worker stops
    reading: backpressure), otherwise after `max_attempts` the error is raised, the worker
    stops and Bytewax recovery replays from the last snapshot (safe: writes are
    version-guarded). `tailor_redis_up{operation="write"}` follows each attempt.
    The client's own retries are off so there is one retry layer, visible in
    `tailor_redis_errors_total{operation="write"}`. `retry` takes the keyword arguments of
    `operators.retry.RetryingSinkSettings` (attempts, backoff, sleep, seed, socket timeout).
    """

    def __init__(
        self,
        redis_url: str,
        prefix: str = "tailor",
        updates_maxlen: int = 100_000,
        **retry: Any,
    ) -> None:
        super().__init__(redis_url, **retry)
        self.prefix = prefix
        self.updates_maxlen = updates_maxlen

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _RedisSinkPartition:
        return _RedisSinkPartition(self.writer(worker_index), self.prefix, self.updates_maxlen)
