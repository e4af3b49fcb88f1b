"""The two Lua scripts of a batch: read what it needs, then commit what it produced.

Both run on the node that owns the app's slot and are atomic there. Their
request is ``ARGV[1]``, a MessagePack array. Binary bodies (touches,
installs, records) follow as ``ARGV[2...]``, and the request refers to them
by their ARGV index, because Redis's cmsgpack reads no MessagePack ``bin``
values.
``KEYS[1]`` is the app's ``:s`` key; every other key is built from it and
shares its hash tag, so all of them live in the same slot.

The commit is optimistic. Every commit increments the app's commit counter
(``:c``), and the read returns the counter's value with a SHA-1 digest of
everything it read (index members and install bodies). When the counter
shows that no other commit came in between, the commit writes at once.
Otherwise it reads the same again and writes nothing when the digest differs
(``stale``) or when another commit claimed one of its event ids first
(``conflict``); the caller then reads and attributes the batch again. A commit that finds its own token on its first
event id reports ``done``: an earlier send of the same commit went through,
so sending it again after a lost reply is safe.
"""

from __future__ import annotations

# Shared by both scripts: the read set of a batch and its digest, and the
# duplicate-filter values of many event ids in few HMGET calls. Lua's unpack
# takes at most a few thousand values, hence the chunks of CHUNK. A redis.call
# from Lua cost about 2 us of Redis CPU beyond the command itself (Redis 7.0,
# script time in INFO commandstats less its commands' time), so the scripts
# make one call per batch wherever Redis takes many items in one command.
_SHARED = r"""
local CHUNK = 1000

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

-- The duplicate filter keeps event ids in one hash per receipt-time bucket.
local function dedup_values(base, ids, buckets)
  local values = {}
  for _, bucket in ipairs(buckets) do
    local key = base .. ':e:' .. bucket
    for start = 1, #ids, CHUNK do
      local last = math.min(start + CHUNK - 1, #ids)
      local found = redis.call('HMGET', key, unpack(ids, start, last))
      for i = 1, last - start + 1 do
        if found[i] then
          values[start + i - 1] = found[i]
        end
      end
    end
  end
  return values
end

local function call_chunked(command, key, items)
  for start = 1, #items, CHUNK do
    redis.call(command, key, unpack(items, start, math.min(start + CHUNK - 1, #items)))
  end
end
"""

# ARGV[1]: [reserve, event ids, queries [[suffix, min, max]], install digests, limit, dedup buckets]
# Returns [sequence base, seen flags, touch bodies per query, install bodies, digest, commit counter,
# watermark as stored ('' before the app's first commit)].
READ = "#!lua\n" + _SHARED + r"""
local request = cmsgpack.unpack(ARGV[1])
local base = string.sub(KEYS[1], 1, -3)
local reserve, ids, queries, installs, limit = request[1], request[2], request[3], request[4], request[5]
local buckets = request[6]
local sequence = 0
if reserve > 0 then
  sequence = redis.call('INCRBY', KEYS[1], reserve) - reserve
end
local seen = {}
local values = dedup_values(base, ids, buckets)
for i = 1, #ids do
  seen[i] = values[i] and 1 or 0
end
local touches, found, digest = read_set(base, queries, installs, limit)
local commits = tonumber(redis.call('GET', base .. ':c')) or 0
local watermark = redis.call('GET', base .. ':w') or ''
return {sequence, seen, touches, found, digest, commits, watermark}
"""

# ARGV[1]: [token, [dedup buckets, bucket to claim in, its TTL], claims, digest, queries, install digests, limit,
#           touches [[bucket, seq, body index, ttl, time, prune, [[suffix, horizon]]]],
#           installs [[digest, body index, ttl]], records [[install event id, body index]],
#           revenue [[line, other line, exponent, coefficient, ...]],
#           watermark, now in ms, record retention in s, revenue line maximum, commit counter read]
# Returns 'ok', 'done', 'conflict' or 'stale'.
COMMIT = "#!lua\n" + _SHARED + r"""
local function expire_at_least(key, seconds)
  if redis.call('TTL', key) < seconds then
    redis.call('EXPIRE', key, seconds)
  end
end

local r = cmsgpack.unpack(ARGV[1])
local base = string.sub(KEYS[1], 1, -3)
local token, dedup, claims, digest = r[1], r[2], r[3], r[4]
local queries, installs, limit = r[5], r[6], r[7]
local touches, new_installs, records, revenue = r[8], r[9], r[10], r[11]
local watermark, now_ms, retention, max_lines, commits_read = r[12], r[13], r[14], r[15], r[16]

local commits = redis.call('INCR', base .. ':c')
redis.call('EXPIRE', base .. ':c', retention)
if commits - 1 ~= commits_read then
  -- Another commit (or an earlier send of this one) came after the read.
  if #claims > 0 then
    local values = dedup_values(base, claims, dedup[1])
    if values[1] == token then
      return 'done'
    end
    for i = 1, #claims do
      if values[i] then
        return 'conflict'
      end
    end
  end
  local _, _, current = read_set(base, queries, installs, limit)
  if current ~= digest then
    return 'stale'
  end
end

if #claims > 0 then
  local claimed = {}
  for _, id in ipairs(claims) do
    claimed[#claimed + 1] = id
    claimed[#claimed + 1] = token
  end
  local dedup_key = base .. ':e:' .. dedup[2]
  call_chunked('HSET', dedup_key, claimed)
  expire_at_least(dedup_key, dedup[3])
end

local mark = tonumber(redis.call('GET', base .. ':w')) or 0
if watermark > mark then
  mark = watermark
  redis.call('SET', base .. ':w', string.format('%.17g', mark))
end

-- Touch bodies go to one hash per bucket, written with one HSET per bucket.
local bucket_set = base .. ':bk'
local bucket_fields = {}
local bucket_ttls = {}
local index_ttls = {}
local prune = {}
for _, touch in ipairs(touches) do
  local bucket, seq, body, ttl, time, due, indexes = touch[1], touch[2], ARGV[touch[3]], touch[4], touch[5], touch[6], touch[7]
  local fields = bucket_fields[bucket]
  if not fields then
    fields = {}
    bucket_fields[bucket] = fields
    bucket_ttls[bucket] = ttl
  end
  fields[#fields + 1] = seq
  fields[#fields + 1] = body
  local member = bucket .. ':' .. seq
  local score = string.format('%.17g', time)
  for _, index in ipairs(indexes) do
    local key = base .. ':x:' .. index[1]
    redis.call('ZADD', key, score, member)
    index_ttls[key] = index[2]
    if due then
      prune[key] = index[2]
    end
  end
end
-- Every write refreshes an index key's TTL. Entries the watermark has left
-- behind are dropped on about one write in eight, which bounds a busy key.
for key, horizon in pairs(index_ttls) do
  redis.call('EXPIRE', key, horizon)
end
for key, horizon in pairs(prune) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. string.format('%.17g', mark - horizon))
end
local longest = 0
for bucket, fields in pairs(bucket_fields) do
  local bucket_key = base .. ':b:' .. bucket
  call_chunked('HSET', bucket_key, fields)
  expire_at_least(bucket_key, bucket_ttls[bucket])
  redis.call('ZADD', bucket_set, bucket, bucket)
  if bucket_ttls[bucket] > longest then
    longest = bucket_ttls[bucket]
  end
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
  local fields = {}
  local scored = {}
  for _, record in ipairs(records) do
    position = position + 1
    fields[#fields + 1] = record[1]
    fields[#fields + 1] = ARGV[record[2]]
    scored[#scored + 1] = string.format('%.17g', position)
    scored[#scored + 1] = record[1]
  end
  call_chunked('HSET', record_hash, fields)
  call_chunked('ZADD', record_index, scored)
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
