"""The sink's Lua scripts: each is the unit of consistency for one kind of write.

A user's profile, recommendations, segment memberships and notice are written by ONE
`USER_SCRIPT` call, so a reader never sees them from different versions and a replayed older
write is a no-op. `SEGMENT_SCRIPT`, `MODEL_SCRIPT` and `FALLBACK_SCRIPT` apply the same
version guard to a segment's description, the published segment model and a published list
for users without history. (The erasure script lives with erasure, in
`tailor.operators.redis.erasure`.) The scripts derive nothing: what they write is what they
are given (membership ids included, `UserOutput.memberships`); what they compute is the
version guard, the set difference between the memberships stored and the new ones, and
whether the write changed anything the notice must name.
"""

from __future__ import annotations

__all__ = ["FALLBACK_SCRIPT", "MODEL_SCRIPT", "RESERVED_FIELDS", "SEGMENT_SCRIPT", "USER_SCRIPT"]

#: Hash fields the sink owns; profile entries may not use these names.
RESERVED_FIELDS = (
    "version",
    "updated_at",
    "segment",
    "segment_name",
    "rfm_segment",
    "rule_segments",
    "memberships",
    "aged_to",
)

# Every key comes from `tailor.operators.redis.keys`, in KEYS, bar one kind: the set of a
# membership the user leaves is named from ARGV[2] (`segment_key(prefix, "")`) and the ids the
# stored profile's `memberships` field holds, since only the script sees the stored profile
# (exact whatever wrote it: a run cut short after its last snapshot, another batching or
# worker count, a user who expired from the worker's state and came back).
# KEYS: 1 user hash, 2 recs key, 3 blocklist set, 4 segments hash, 5 updates stream,
#       6.. the sets of the new memberships (ARGV 11..).
# ARGV: 1 user id, 2 segment key prefix, 3 version, 4 recs items (JSON objects, one per line;
#       items in the blocklist set are dropped here, so no list written after a block holds
#       the item, whenever the worker learns of it), 5 notice head (a JSON object
#       without "changed" and the closing brace), 6 updates stream MAXLEN, 7 "1" when the
#       output's segments are settled (final for its version: it may replace a stored output
#       of the same version, a correction), else "0", 8 aged_to: 0 for an event's output,
#       else the aging boundary the output is as of (`UserOutput.aged_to`), 9 updates channel,
#       10 n, the number of new membership ids (`UserOutput.memberships`), 11..10+n those
#       ids, then the recommendations' TTL in seconds (0: none), then hash field/value pairs
#       (JSON; `memberships` among them: the ids again, as JSON, for the next write to read).
# Writes are ordered by (version, aged_to): an aged output follows the outputs of its version
# and leaves the recommendations key as it is.
# Returns false when nothing was written: the stored (version, aged_to) is newer, or the same
# and this output is not settled, or the same and its segments (cluster, RFM, rules) do not
# differ. Else {changed, {segment, size, ...}}: the sizes of the sets it changed, as SCARD
# reads them after the write (the `tailor_segment_users` gauge).
#
# Notices: one per write that applies, identical on the channel and the stream, each with
# "correction" (true when it rewrote the version already stored). A version's first write
# and its correction apply at most once each, so (user_id, version, correction) names a
# notice exactly, replays included: what a subscriber deduplicates on.
USER_SCRIPT = """
local user_key, recs_key, blocklist, segments_hash = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local updates = KEYS[5]
local uid, segment_prefix, version = ARGV[1], ARGV[2], ARGV[3]
local after, member_keys = {}, {}
for i = 1, tonumber(ARGV[10]) do
  after[i] = ARGV[10 + i]
  member_keys[ARGV[10 + i]] = KEYS[5 + i]
end
local recs_ttl = tonumber(ARGV[11 + #after])
local first = 12 + #after
local function set_key(id) return member_keys[id] or (segment_prefix .. id) end
local check = redis.call('SCARD', blocklist) > 0
local entries = {}
for entry in string.gmatch(ARGV[4], '[^\\n]+') do
  if not check or redis.call('SISMEMBER', blocklist, cjson.decode(entry)['item_id']) == 0 then
    entries[#entries + 1] = entry
  end
end
local items = '[' .. table.concat(entries, ',') .. ']'
local aged = tonumber(ARGV[8])
local guard = redis.call('HMGET', user_key, 'version', 'aged_to')
local stored, stored_aged = guard[1], tonumber(guard[2] or '0')
if stored then
  local v, sv = tonumber(version), tonumber(stored)
  if sv > v or (sv == v and (stored_aged > aged
                             or (stored_aged == aged and ARGV[7] ~= '1'))) then
    return false
  end
end
local RESERVED = {version = true, updated_at = true, segment = true, segment_name = true,
                  rfm_segment = true, rule_segments = true, memberships = true, aged_to = true}
local old, new, names = {}, {}, {}
local flat = redis.call('HGETALL', user_key)
for i = 1, #flat, 2 do old[flat[i]] = flat[i + 1] end
for i = first, #ARGV, 2 do
  new[ARGV[i]] = ARGV[i + 1]
  names[#names + 1] = ARGV[i]
end
-- A segment's name lives in the segments hash (SEGMENT_SCRIPT renames its members): an
-- output drafted before a rename carries the old one, so the stored name is the hash's.
local renamed = nil
if new['segment'] then
  local segment = cjson.decode(new['segment'])
  local info = type(segment) == 'string' and segment ~= ''
               and redis.call('HGET', segments_hash, segment)
  if info then
    local ok, decoded = pcall(cjson.decode, info)
    if ok and type(decoded) == 'table' and type(decoded['name']) == 'string' then
      local name = cjson.encode(decoded['name'])
      if name ~= new['segment_name'] then
        new['segment_name'] = name
        renamed = name
      end
    end
  end
end

local function as_set(list)
  local set = {}
  for _, v in ipairs(list) do set[v] = true end
  return set
end
local before = old['memberships'] and cjson.decode(old['memberships']) or {}
local in_before, in_after = as_set(before), as_set(after)

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
local old_recs = aged == 0 and redis.call('GET', recs_key)
local changed = {}
if profile_changed then changed[#changed + 1] = 'profile' end
local segments_changed = false
local function segment_part(name)
  changed[#changed + 1] = name
  segments_changed = true
end
if old['segment'] ~= new['segment'] or old['segment_name'] ~= new['segment_name'] then
  segment_part('segment')
end
if (old['rfm_segment'] or '""') ~= new['rfm_segment'] then segment_part('rfm_segment') end
if old['rule_segments'] ~= new['rule_segments'] then segment_part('rule_segments') end
if aged == 0 and (not old_recs or string.sub(old_recs, -#recs_suffix) ~= recs_suffix) then
  changed[#changed + 1] = 'recs'
end
-- A correction rewrites its (version, aged_to) only to change the segments: the replay of
-- one already applied, or of an output that settled as it was first sent, writes nothing.
local correction = stored ~= false and tonumber(stored) == tonumber(version)
                   and stored_aged == aged
if correction and not segments_changed then return false end

local touched = {}
for _, id in ipairs(before) do
  if not in_after[id] then
    redis.call('SREM', set_key(id), uid)
    touched[#touched + 1] = id
  end
end
for _, id in ipairs(after) do
  if not in_before[id] then
    redis.call('SADD', set_key(id), uid)
    touched[#touched + 1] = id
  end
end
if #stale > 0 then redis.call('HDEL', user_key, unpack(stale)) end
redis.call('HSET', user_key, unpack(ARGV, first))
if renamed then redis.call('HSET', user_key, 'segment_name', renamed) end
if aged == 0 then
  local value = '{"version":' .. version .. recs_suffix
  if recs_ttl > 0 then
    redis.call('SET', recs_key, value, 'EX', recs_ttl)
  else
    redis.call('SET', recs_key, value)
  end
end

local quoted = {}
for i, part in ipairs(changed) do quoted[i] = '"' .. part .. '"' end
local notice = ARGV[5] .. ',"changed":[' .. table.concat(quoted, ',') .. '],"correction":'
               .. (correction and 'true' or 'false') .. '}'
redis.call('PUBLISH', ARGV[9], notice)
redis.call('XADD', updates, 'MAXLEN', '~', ARGV[6], '*', 'notice', notice)

local sizes = {}
for _, id in ipairs(touched) do
  sizes[#sizes + 1] = id
  sizes[#sizes + 1] = redis.call('SCARD', set_key(id))
end
return {changed, sizes}
"""

# KEYS: 1 model key, then optionally 2 the segment history stream and 3.. the member sets of
# the model's cluster segments. ARGV: 1 version, 2 JSON record, 3 the record's event time, 4
# the history's MAXLEN, 5.. the segment ids of KEYS 3... Newer versions only. With a history
# stream, each applied record also appends the segments' sizes as they stand (SCARD of their
# sets): `tailor segments --plot` draws them over event time.
MODEL_SCRIPT = """
local stored = redis.call('HGET', KEYS[1], 'version')
if stored and tonumber(stored) >= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'version', ARGV[1], 'record', ARGV[2])
if #KEYS >= 2 then
  local sizes = {}
  for i = 3, #KEYS do sizes[ARGV[i + 2]] = redis.call('SCARD', KEYS[i]) end
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'version', ARGV[1], 'at', ARGV[3],
             'sizes', cjson.encode(sizes))
end
return 1
"""

# KEYS: 1 segments hash, 2 the segment's member set. ARGV: 1 segment id, 2 version, 3 JSON
# value, 4 the segment id as a user hash stores it (JSON), 5 the user key prefix
# (`user_key(prefix, "")`: a member's profile). Same version guard. A new name is
# written into every member's profile too (`segment_name`), so a profile and the segment
# table never disagree (USER_SCRIPT stores the hash's name): one HMGET and at most one
# HSET per member, once per rename (names change only when a segment really moved).
# Returns the members renamed, or -1 when an older version was refused.
SEGMENT_SCRIPT = """
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old then
  local ok, decoded = pcall(cjson.decode, old)
  if ok and type(decoded) == 'table' and tonumber(decoded['version'])
     and tonumber(decoded['version']) >= tonumber(ARGV[2]) then
    return -1
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
local name = cjson.encode(cjson.decode(ARGV[3])['name'])  -- encoded as USER_SCRIPT does
local renamed = 0
for _, uid in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local user_key = ARGV[5] .. uid
  local fields = redis.call('HMGET', user_key, 'segment', 'segment_name')
  if fields[1] == ARGV[4] and fields[2] ~= name then
    redis.call('HSET', user_key, 'segment_name', name)
    renamed = renamed + 1
  end
end
return renamed
"""

# KEYS: 1 the list's key, 2 the hash of every list's version, 3 the blocklist set. ARGV: 1
# the list's name (its field in KEYS[2]), 2 version, 3 event time (JSON), 4 items (JSON
# objects, one per line: the blocked ones are dropped, as USER_SCRIPT drops them). Newer
# versions only: a replay, or a list from a run behind this one, never moves a list back.
# The value is byte for byte the sorted-keys JSON of {"at", "items", "version"}. Returns 1
# when written, else 0.
FALLBACK_SCRIPT = """
local stored = redis.call('HGET', KEYS[2], ARGV[1])
if stored and tonumber(stored) >= tonumber(ARGV[2]) then return 0 end
local check = redis.call('SCARD', KEYS[3]) > 0
local entries = {}
for entry in string.gmatch(ARGV[4], '[^\\n]+') do
  if not check or redis.call('SISMEMBER', KEYS[3], cjson.decode(entry)['item_id']) == 0 then
    entries[#entries + 1] = entry
  end
end
redis.call('SET', KEYS[1], '{"at":' .. ARGV[3] .. ',"items":[' .. table.concat(entries, ',')
           .. '],"version":' .. ARGV[2] .. '}')
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return 1
"""
