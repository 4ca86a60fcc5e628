"""The Lua scripts behind the Redis limit store (each runs atomically inside Redis).

Per scope the keys are: ``rq`` and ``tk`` (hashes: second → requests / tokens, the 60-second windows), ``cc``
(sorted set: reservation id → lease expiry, the concurrency slots), ``b`` (hash: ``spent`` and ``reserved`` nanos
of one budget period, and ``loaded_at``, when its spend was read from the usage records), ``br`` (sorted set:
reservation id → lease expiry) and ``ba`` (hash: reservation id → reserved nanos). Leases make a crashed
replica's reservations expire: every admission first drops expired slots and returns expired budget reservations
before it checks anything.

Counts reach ``HINCRBY`` as the integer strings they arrived as (or built as strings), never as Lua numbers:
Redis formats those with ``%.17g``, so a negated zero would become ``-0`` and a large value ``1e+18``, both of
which ``HINCRBY`` refuses.
"""

from __future__ import annotations

KEYS_PER_SCOPE = 6
ARGS_PER_SCOPE = 5

# Shared helpers, prepended to both scripts.
_HELPERS = """
local function window(key, sec)
  local total = 0
  local oldest = {}
  local flat = redis.call('HGETALL', key)
  for i = 1, #flat, 2 do
    local s = tonumber(flat[i])
    local v = tonumber(flat[i + 1])
    if s <= sec - 60 then
      redis.call('HDEL', key, flat[i])
    else
      total = total + v
      oldest[#oldest + 1] = {s, v}
    end
  end
  return total, oldest
end

local function wait_for(buckets, total, need, limit, sec)
  table.sort(buckets, function(a, b) return a[1] < b[1] end)
  local excess = total + need - limit
  for _, bucket in ipairs(buckets) do
    excess = excess - bucket[2]
    if excess <= 0 then return bucket[1] + 60 - sec end
  end
  return 60
end

local function reclaim(b, br, ba, now)
  local expired = redis.call('ZRANGEBYSCORE', br, '-inf', now)
  for _, id in ipairs(expired) do
    local amount = redis.call('HGET', ba, id)
    if amount and amount ~= '0' then redis.call('HINCRBY', b, 'reserved', '-' .. amount) end
    redis.call('HDEL', ba, id)
    redis.call('ZREM', br, id)
  end
end
"""

# KEYS: 6 per scope (rq, tk, cc, b, br, ba)
# ARGV: now, id, tokens, cost, lease_expiry, n_scopes, then 5 per scope (rpm, tpm, concurrent, budget, period_ttl)
# Returns {"ok", req_limit, req_remaining, req_reset, tok_limit, tok_remaining, tok_reset}
#      or {"deny", scope_index, limit_name, allowed, retry_after}
#      or {"init", scope_index}  (the budget's spend for this period must be loaded from the records first)
RESERVE = (
    _HELPERS
    + """
local now = tonumber(ARGV[1])
local sec = math.floor(now)
local id = ARGV[2]
local tokens = tonumber(ARGV[3])
local cost = tonumber(ARGV[4])
local expiry = tonumber(ARGV[5])
local n = tonumber(ARGV[6])
local windows = {}
for i = 0, n - 1 do
  local k = i * 6
  local a = 7 + i * 5
  local rpm, tpm = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
  local cc, budget = tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  if rpm > 0 then
    local total, buckets = window(KEYS[k + 1], sec)
    if total + 1 > rpm then return {'deny', i, 'rpm', rpm, wait_for(buckets, total, 1, rpm, sec)} end
    windows[i * 2 + 1] = total
  end
  if tpm > 0 then
    local total, buckets = window(KEYS[k + 2], sec)
    if total + tokens > tpm then return {'deny', i, 'tpm', tpm, wait_for(buckets, total, tokens, tpm, sec)} end
    windows[i * 2 + 2] = total
  end
  if cc > 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[k + 3], '-inf', now)
    if redis.call('ZCARD', KEYS[k + 3]) >= cc then return {'deny', i, 'concurrent', cc, 1} end
  end
  if budget >= 0 then
    reclaim(KEYS[k + 4], KEYS[k + 5], KEYS[k + 6], now)
    local spent = redis.call('HGET', KEYS[k + 4], 'spent')
    if not spent then return {'init', i} end
    local reserved = tonumber(redis.call('HGET', KEYS[k + 4], 'reserved') or '0')
    if tonumber(spent) + reserved + cost > budget then
      return {'deny', i, 'budget', budget, tonumber(ARGV[a + 4])}
    end
  end
end
local best = {-1, -1, 0, -1, -1, 0}
for i = 0, n - 1 do
  local k = i * 6
  local a = 7 + i * 5
  local rpm, tpm = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
  local cc, budget, ttl = tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4])
  if rpm > 0 then
    redis.call('HINCRBY', KEYS[k + 1], sec, 1)
    redis.call('EXPIRE', KEYS[k + 1], 120)
    local left = rpm - windows[i * 2 + 1] - 1
    if best[1] < 0 or left < best[2] then best[1], best[2], best[3] = rpm, left, 60 end
  end
  if tpm > 0 then
    redis.call('HINCRBY', KEYS[k + 2], sec, tokens)
    redis.call('EXPIRE', KEYS[k + 2], 120)
    local left = tpm - windows[i * 2 + 2] - tokens
    if best[4] < 0 or left < best[5] then best[4], best[5], best[6] = tpm, left, 60 end
  end
  if cc > 0 then
    redis.call('ZADD', KEYS[k + 3], expiry, id)
    redis.call('EXPIRE', KEYS[k + 3], math.ceil(expiry - now) + 60)
  end
  if budget >= 0 then
    redis.call('HINCRBY', KEYS[k + 4], 'reserved', ARGV[4])
    redis.call('ZADD', KEYS[k + 5], expiry, id)
    redis.call('HSET', KEYS[k + 6], id, ARGV[4])
    for j = 4, 6 do redis.call('EXPIRE', KEYS[k + j], ttl + 86400) end
  end
end
return {'ok', best[1], best[2], best[3], best[4], best[5], best[6]}
"""
)

# KEYS: 1 (the settled marker), then per scope: tk, cc, b (reservation's period), br, ba, b (current period)
# ARGV: id, reservation second, token delta, cost, marker ttl, n_scopes, recorded_at, then per scope
#       (tpm, cc, budget)
# The marker makes settlement idempotent: a replay after a crash or an outage changes nothing the second time.
SETTLE = """
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', tonumber(ARGV[5])) then return 0 end
local id = ARGV[1]
local n = tonumber(ARGV[6])
local recorded = tonumber(ARGV[7])
for i = 0, n - 1 do
  local k = 1 + i * 6
  local a = 8 + i * 3
  if tonumber(ARGV[a]) > 0 and redis.call('HEXISTS', KEYS[k + 1], ARGV[2]) == 1 then
    redis.call('HINCRBY', KEYS[k + 1], ARGV[2], ARGV[3])
  end
  if tonumber(ARGV[a + 1]) > 0 then redis.call('ZREM', KEYS[k + 2], id) end
  if tonumber(ARGV[a + 2]) >= 0 then
    local amount = redis.call('HGET', KEYS[k + 5], id)
    if amount then
      if amount ~= '0' then redis.call('HINCRBY', KEYS[k + 3], 'reserved', '-' .. amount) end
      redis.call('HDEL', KEYS[k + 5], id)
      redis.call('ZREM', KEYS[k + 4], id)
    end
    -- Spend counts only where this period's counter was loaded from the records, and only if the call's
    -- record was written after that load began: an unloaded period will include this call when it is loaded,
    -- and a counter loaded later (Redis lost its data during an outage) already does.
    if redis.call('HEXISTS', KEYS[k + 6], 'spent') == 1 then
      if recorded >= tonumber(redis.call('HGET', KEYS[k + 6], 'loaded_at') or '0') then
        redis.call('HINCRBY', KEYS[k + 6], 'spent', ARGV[4])
      end
    end
  end
end
return 1
"""

# KEYS: per scope: cc, br ; ARGV: id, lease expiry, now
# Extends a running call's concurrency slot and budget reservation; one already reclaimed (its lease ran out while
# renewals could not reach Redis) is not brought back (ZADD XX).
RENEW = """
local id = ARGV[1]
local expiry = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
for i = 1, #KEYS, 2 do
  if redis.call('ZADD', KEYS[i], 'XX', 'CH', expiry, id) == 1 then
    redis.call('EXPIRE', KEYS[i], math.ceil(expiry - now) + 60)
  end
  redis.call('ZADD', KEYS[i + 1], 'XX', expiry, id)
end
return 1
"""

# KEYS: the replicas' heartbeats (sorted set: replica id -> expiry) ; ARGV: id, expiry, now
# Returns how many replicas are live (their heartbeats not expired), this one included.
HEARTBEAT = """
redis.call('ZADD', KEYS[1], tonumber(ARGV[2]), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', tonumber(ARGV[3]))
redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2]) - tonumber(ARGV[3])) + 60)
return redis.call('ZCARD', KEYS[1])
"""

# KEYS: b ; ARGV: spent (from the records), ttl, loaded_at (epoch seconds when reading the records began)
# The first replica to load a period wins; settlements of calls recorded before loaded_at are in its figure.
INIT_SPENT = """
if redis.call('HSETNX', KEYS[1], 'spent', ARGV[1]) == 1 then
  redis.call('HSET', KEYS[1], 'loaded_at', ARGV[3])
end
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]) + 86400)
return 1
"""
