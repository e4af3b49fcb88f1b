"""The two Lua scripts of a batch: read what it needs, then commit what it produced.

Both run on the node that owns the app's slot and are atomic there. Their
request is ``ARGV[1]``, a MessagePack array; binary bodies (touches, installs,
records) follow as ``ARGV[2...]`` and the request refers to them by their
ARGV index, because Redis's cmsgpack reads no MessagePack ``bin`` values.
``KEYS[1]`` is the app's ``:s`` key; every other key is built from it and
shares its hash tag, so all of them live in the same slot.

The commit is optimistic. The read returns a SHA-1 digest of everything it
read (index members and install bodies). The commit reads the same again and
writes nothing when the digest differs (``stale``) or when another commit
claimed one of its event ids first (``conflict``); the caller then reads and
attributes the batch again. A commit that finds its own token on its first
event id reports ``done``: an earlier send of the same commit went through,
so sending it again after a lost reply is safe.
"""

from __future__ import annotations

# Shared by both scripts: the read set of a batch and its digest.
_READ_SET = r"""
local function read_set(base, queries, installs, limit)
  local touches = {}
  local parts = {}
  for qi, query in ipairs(queries) do
    local members = redis.call('ZREVRANGEBYSCORE', base .. ':x:' .. query[1],
      string.format('%.17g', query[3]), string.format('%.17g', query[2]), 'LIMIT', 0, limit)
    local bodies = {}
    for _, member in ipairs(members) do
      local separator = string.find(member, ':', 1, true)
      local body = redis.call('HGET', base .. ':b:' .. string.sub(member, 1, separator - 1),
        string.sub(member, separator + 1))
      if body then
        bodies[#bodies + 1] = body
      end
    end
    touches[qi] = bodies
    parts[#parts + 1] = table.concat(members, ',')
  end
  local found = {}
  for ii, digest in ipairs(installs) do
    local body = redis.call('GET', base .. ':n:' .. digest)
    found[ii] = body
    if body then
      parts[#parts + 1] = #body .. ':' .. body
    else
      parts[#parts + 1] = '-'
    end
  end
  return touches, found, redis.sha1hex(table.concat(parts, '\n'))
end
"""

# ARGV[1]: [reserve, event ids, queries [[suffix, min, max]], install digests, limit]
# Returns [sequence base, seen flags, touch bodies per query, install bodies, digest].
READ = "#!lua\n" + _READ_SET + r"""
local request = cmsgpack.unpack(ARGV[1])
local base = string.sub(KEYS[1], 1, -3)
local reserve, ids, queries, installs, limit = request[1], request[2], request[3], request[4], request[5]
local sequence = 0
if reserve > 0 then
  sequence = redis.call('INCRBY', KEYS[1], reserve) - reserve
end
local seen = {}
for i, id in ipairs(ids) do
  seen[i] = redis.call('EXISTS', base .. ':e:' .. id)
end
local touches, found, digest = read_set(base, queries, installs, limit)
return {sequence, seen, touches, found, digest}
"""

# ARGV[1]: [token, dedup ttl, claims, digest, queries, install digests, limit,
#           touches [[bucket, seq, body index, ttl, time, [[suffix, horizon]]]],
#           installs [[digest, body index, ttl]], records [[install event id, body index]],
#           revenue [[line, other line, exponent, coefficient, ...]],
#           watermark, now in ms, record retention in s, revenue line maximum]
# Returns 'ok', 'done', 'conflict' or 'stale'.
COMMIT = "#!lua\n" + _READ_SET + r"""
local function expire_at_least(key, seconds)
  if redis.call('TTL', key) < seconds then
    redis.call('EXPIRE', key, seconds)
  end
end

local r = cmsgpack.unpack(ARGV[1])
local base = string.sub(KEYS[1], 1, -3)
local token, dedup_ttl, claims, digest = r[1], r[2], r[3], r[4]
local queries, installs, limit = r[5], r[6], r[7]
local touches, new_installs, records, revenue = r[8], r[9], r[10], r[11]
local watermark, now_ms, retention, max_lines = r[12], r[13], r[14], r[15]

if #claims > 0 then
  if redis.call('GET', base .. ':e:' .. claims[1]) == token then
    return 'done'
  end
  for _, id in ipairs(claims) do
    if redis.call('EXISTS', base .. ':e:' .. id) == 1 then
      return 'conflict'
    end
  end
end
local _, _, current = read_set(base, queries, installs, limit)
if current ~= digest then
  return 'stale'
end

for _, id in ipairs(claims) do
  redis.call('SET', base .. ':e:' .. id, token, 'EX', dedup_ttl)
end

local mark = tonumber(redis.call('GET', base .. ':w')) or 0
if watermark > mark then
  mark = watermark
  redis.call('SET', base .. ':w', string.format('%.17g', mark))
end

local bucket_set = base .. ':bk'
local horizons = {}
local longest = 0
for _, touch in ipairs(touches) do
  local bucket, seq, body, ttl, time, indexes = touch[1], touch[2], ARGV[touch[3]], touch[4], touch[5], touch[6]
  local bucket_key = base .. ':b:' .. bucket
  redis.call('HSET', bucket_key, seq, body)
  expire_at_least(bucket_key, ttl)
  redis.call('ZADD', bucket_set, bucket, bucket)
  if ttl > longest then
    longest = ttl
  end
  local member = bucket .. ':' .. seq
  for _, index in ipairs(indexes) do
    local key = base .. ':x:' .. index[1]
    redis.call('ZADD', key, string.format('%.17g', time), member)
    horizons[key] = index[2]
  end
end
-- Drop index entries and body buckets whose window the watermark has passed.
for key, horizon in pairs(horizons) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. string.format('%.17g', mark - horizon))
  redis.call('EXPIRE', key, horizon)
end
if longest > 0 then
  local closed = redis.call('ZRANGEBYSCORE', bucket_set, '-inf', math.floor(mark / 3600), 'LIMIT', 0, 100)
  for _, bucket in ipairs(closed) do
    redis.call('DEL', base .. ':b:' .. bucket)
  end
  if #closed > 0 then
    redis.call('ZREM', bucket_set, unpack(closed))
  end
  expire_at_least(bucket_set, longest)
end

for _, install in ipairs(new_installs) do
  redis.call('SET', base .. ':n:' .. install[1], ARGV[install[2]], 'EX', install[3])
end

if #records > 0 then
  local record_hash, record_index, position_key = base .. ':rh', base .. ':ri', base .. ':rs'
  -- List positions follow commit order and start from the commit time in
  -- microseconds, so retention can cut the list by position.
  local position = tonumber(redis.call('GET', position_key)) or 0
  if position < now_ms * 1000 then
    position = now_ms * 1000
  end
  for _, record in ipairs(records) do
    position = position + 1
    redis.call('HSET', record_hash, record[1], ARGV[record[2]])
    redis.call('ZADD', record_index, string.format('%.17g', position), record[1])
  end
  redis.call('SET', position_key, string.format('%.17g', position), 'EX', retention)
  local cutoff = (now_ms - retention * 1000) * 1000
  local expired = redis.call('ZRANGEBYSCORE', record_index, '-inf', string.format('%.17g', cutoff), 'LIMIT', 0, 1000)
  if #expired > 0 then
    redis.call('HDEL', record_hash, unpack(expired))
    redis.call('ZREM', record_index, unpack(expired))
  end
  redis.call('EXPIRE', record_hash, retention)
  redis.call('EXPIRE', record_index, retention)
end

if #revenue > 0 then
  local amounts, counts = base .. ':va', base .. ':vn'
  for _, line in ipairs(revenue) do
    local name = line[1]
    if redis.call('HEXISTS', counts, name) == 0 and redis.call('HLEN', counts) >= max_lines then
      name = line[2]
    end
    redis.call('HINCRBY', counts, name, 1)
    for c = 3, #line, 2 do
      redis.call('HINCRBY', amounts, name .. '|' .. line[c], line[c + 1])
    end
  end
  redis.call('EXPIRE', amounts, retention)
  redis.call('EXPIRE', counts, retention)
end
return 'ok'
"""
