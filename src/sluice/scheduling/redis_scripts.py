"""The Lua scripts behind the Redis scheduler backend (each runs atomically inside Redis).

They apply the rules of :mod:`sluice.scheduling.ordering` and :class:`~sluice.scheduling.book.SlotBook` to state
that every replica shares; the backend's tests hold their choices to the Python ones. Times are Redis's own
clock (``TIME``, milliseconds), so replicas' clocks never disagree about a wait or a lease.

Keys under one deployment's base ``B`` (``<prefix>:{<deployment>}``, one hash slot):

- ``B:held``   sorted set, ticket -> lease expiry (ms): the slots in use
- ``B:hinfo``  hash, ticket -> "tenant<US>started ms<US>upfront charge" of each running request
- ``B:wait``   hash, ticket -> JSON {t tenant, r rank, e enqueued ms, s seq, o replica, p principal, n note,
  c upfront charge}
- ``B:depth``  hash, rank -> waiting requests of the class
- ``B:lines``  hash, "tenant<US>rank" -> waiting requests of the line
- ``B:served`` hash, "tenant<US>rank" -> last grant (ms), while the line has waiters
- ``B:climb``  hash, rank -> when the class started climbing (ms), while the class has waiters
- ``B:vtc``    hash, tenant -> virtual token counter;  ``B:active`` hash, tenant -> requests waiting or running
- ``B:svc``    list of recent service times (ms);  ``B:cap`` the capacity;  ``B:seq`` arrival counter

``ARGV[1]`` of every script is the policy as JSON: per class by rank, ``[climb thresholds in ms, max_queue or
-1, max_queue_per_tenant or -1]``. A grant is announced on the owning replica's channel ``<prefix>:grant:<replica>`` as
"deployment<US>ticket"; the owner also checks now and then, so a lost message costs a delay, never a slot.
"""

from __future__ import annotations

_COMMON = r"""
local B = KEYS[1]
local policy = cjson.decode(ARGV[1])
local US = '\31'
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

-- ordering.FairShare.join: a returning tenant is lifted to one token (RETURN_EDGE) below the smallest active counter.
local function join(tenant)
  if not redis.call('HGET', B .. ':active', tenant) then
    local act = redis.call('HKEYS', B .. ':active')
    local floor = nil
    for _, other in ipairs(act) do
      local c = tonumber(redis.call('HGET', B .. ':vtc', other) or '0')
      if floor == nil or c < floor then floor = c end
    end
    local own = tonumber(redis.call('HGET', B .. ':vtc', tenant) or '0')
    if floor ~= nil and own < floor - 1 then redis.call('HSET', B .. ':vtc', tenant, floor - 1) end
  end
  redis.call('HINCRBY', B .. ':active', tenant, 1)
end

local function leave(tenant, charge)
  local c = redis.call('HINCRBYFLOAT', B .. ':vtc', tenant, charge)
  if redis.call('HINCRBY', B .. ':active', tenant, -1) > 0 then return end
  redis.call('HDEL', B .. ':active', tenant)
  local act = redis.call('HKEYS', B .. ':active')
  if #act == 0 then redis.call('DEL', B .. ':vtc') return end
  local floor = nil
  for _, other in ipairs(act) do
    local o = tonumber(redis.call('HGET', B .. ':vtc', other) or '0')
    if floor == nil or o < floor then floor = o end
  end
  if tonumber(c) <= floor - 1 then redis.call('HDEL', B .. ':vtc', tenant) end
end

-- A slot is taken: the tenant's counter takes the request's upfront charge (its prompt) at once.
local function start(ticket, tenant, lease, upfront)
  redis.call('ZADD', B .. ':held', now + lease, ticket)
  redis.call('HSET', B .. ':hinfo', ticket, tenant .. US .. now .. US .. upfront)
  if upfront ~= 0 then redis.call('HINCRBYFLOAT', B .. ':vtc', tenant, upfront) end
end

-- A slot is given back; charge is what was served beyond the upfront charge. With refund (granted to a waiter
-- that had left), the upfront charge is taken back too.
local function finish(ticket, charge, record, refund)
  local info = redis.call('HGET', B .. ':hinfo', ticket)
  redis.call('ZREM', B .. ':held', ticket)
  if not info then return false end
  redis.call('HDEL', B .. ':hinfo', ticket)
  local sep = string.find(info, US, 1, true)
  local sep2 = string.find(info, US, sep + 1, true)
  if refund then charge = charge - tonumber(string.sub(info, sep2 + 1)) end
  leave(string.sub(info, 1, sep - 1), charge)
  if record then
    redis.call('LPUSH', B .. ':svc', now - tonumber(string.sub(info, sep + 1, sep2 - 1)))
    redis.call('LTRIM', B .. ':svc', 0, 31)
  end
  return true
end

local function expire()
  local gone = redis.call('ZRANGEBYSCORE', B .. ':held', '-inf', now)
  for _, ticket in ipairs(gone) do finish(ticket, 0, false, false) end
end

-- ordering.class_left: a class with no waiters stops climbing; one served while nothing above it waited restarts.
local function class_left(rank, depth, granted_at)
  if depth == 0 then redis.call('HDEL', B .. ':climb', rank) return end
  if not granted_at then return end
  for r = 0, rank - 1 do
    if tonumber(redis.call('HGET', B .. ':depth', r) or '0') > 0 then return end
  end
  redis.call('HSET', B .. ':climb', rank, granted_at)
end

local function left_line(w, granted_at)
  local line = w.t .. US .. w.r
  class_left(w.r, redis.call('HINCRBY', B .. ':depth', w.r, -1), granted_at)
  if redis.call('HINCRBY', B .. ':lines', line, -1) > 0 then
    if granted_at then redis.call('HSET', B .. ':served', line, granted_at) end
  else
    redis.call('HDEL', B .. ':lines', line)
    redis.call('HDEL', B .. ':served', line)
  end
end

local function headroom()
  local h = 0
  for _, v in ipairs(redis.call('LRANGE', B .. ':svc', 0, -1)) do
    if tonumber(v) > h then h = tonumber(v) end
  end
  return h
end

-- The order of ordering.Ticket.key: (level, counter or deadline, enqueued, seq); smaller goes first. Aged on the
-- line's clock (served[line]); the class levels on the class's clock (served['#' .. rank], from B:climb).
local function key(w, hr, vtc, served)
  local since = w.e
  local s = served[w.t .. US .. w.r]
  if s and s > since then since = s end
  local climb = policy[w.r + 1][1]
  local bound = climb[#climb]
  local aged_after = math.max(bound - hr, bound / 2)
  if now - since >= aged_after then return {-1, since + aged_after, w.e, w.s} end
  local waited = now - (served['#' .. w.r] or w.e)
  local level = w.r
  for i = 1, #climb - 1 do
    if waited < climb[i] then break end
    level = level - 1
  end
  return {level, vtc[w.t] or 0, w.e, w.s}
end

local function less(a, b)
  for i = 1, 4 do
    if a[i] ~= b[i] then return a[i] < b[i] end
  end
  return false
end

local function state()
  local vtc, served, waiting = {}, {}, {}
  local flat = redis.call('HGETALL', B .. ':vtc')
  for i = 1, #flat, 2 do vtc[flat[i]] = tonumber(flat[i + 1]) end
  flat = redis.call('HGETALL', B .. ':served')
  for i = 1, #flat, 2 do served[flat[i]] = tonumber(flat[i + 1]) end
  flat = redis.call('HGETALL', B .. ':climb')
  for i = 1, #flat, 2 do served['#' .. flat[i]] = tonumber(flat[i + 1]) end
  flat = redis.call('HGETALL', B .. ':wait')
  for i = 1, #flat, 2 do
    local w = cjson.decode(flat[i + 1])
    w.id = flat[i]
    waiting[#waiting + 1] = w
  end
  return vtc, served, waiting
end

-- Fill free slots from the line, best first; announce each grant to its owner.
local function dispatch(lease)
  local cap = tonumber(redis.call('GET', B .. ':cap') or '0')
  local free = cap - redis.call('ZCARD', B .. ':held')
  if free <= 0 or redis.call('HLEN', B .. ':wait') == 0 then return end
  local vtc, served, waiting = state()
  local hr = headroom()
  while free > 0 and #waiting > 0 do
    local best, best_key, at = nil, nil, 0
    for i, w in ipairs(waiting) do
      local k = key(w, hr, vtc, served)
      if best_key == nil or less(k, best_key) then best, best_key, at = w, k, i end
    end
    table.remove(waiting, at)
    redis.call('HDEL', B .. ':wait', best.id)
    left_line(best, now)
    if redis.call('HEXISTS', B .. ':lines', best.t .. US .. best.r) == 1 then served[best.t .. US .. best.r] = now end
    served['#' .. best.r] = tonumber(redis.call('HGET', B .. ':climb', best.r))
    start(best.id, best.t, lease, best.c or 0)
    vtc[best.t] = (vtc[best.t] or 0) + (best.c or 0)
    redis.call('PUBLISH', ARGV[2] .. best.o, ARGV[3] .. US .. best.id)
    free = free - 1
  end
end
"""

# KEYS: base. ARGV: policy, channel prefix, deployment, ticket, tenant, rank, replica, principal, note,
# capacity, lease ms, upfront charge. Returns {"granted", 0} | {"full", place, mean service ms, "tenant" | "class"} |
# {"queued", place}.
ACQUIRE = (
    _COMMON
    + r"""
local ticket, tenant, rank = ARGV[4], ARGV[5], tonumber(ARGV[6])
local cap, lease, upfront = tonumber(ARGV[10]), tonumber(ARGV[11]), tonumber(ARGV[12])
redis.call('SET', B .. ':cap', cap)
expire()
dispatch(lease)
if redis.call('ZCARD', B .. ':held') < cap and redis.call('HLEN', B .. ':wait') == 0 then
  join(tenant)
  start(ticket, tenant, lease, upfront)
  return {'granted', 0}
end
local depth = tonumber(redis.call('HGET', B .. ':depth', rank) or '0')
local max_queue, per_tenant = policy[rank + 1][2], policy[rank + 1][3]
local mine = tonumber(redis.call('HGET', B .. ':lines', tenant .. US .. rank) or '0')
local scope = nil
if per_tenant >= 0 and mine >= per_tenant then scope = 'tenant'
elseif max_queue >= 0 and depth >= max_queue then scope = 'class' end
if scope then
  local svc = redis.call('LRANGE', B .. ':svc', 0, -1)
  local total = 0
  for _, v in ipairs(svc) do total = total + tonumber(v) end
  return {'full', depth + 1, tostring(#svc > 0 and total / #svc or 0), scope}
end
local me = {
  t = tenant, r = rank, e = now, s = redis.call('INCR', B .. ':seq'), o = ARGV[7], p = ARGV[8], n = ARGV[9], c = upfront
}
join(tenant)
redis.call('HSET', B .. ':wait', ticket, cjson.encode(me))
if depth == 0 then redis.call('HSET', B .. ':climb', rank, now) end
redis.call('HINCRBY', B .. ':depth', rank, 1)
redis.call('HINCRBY', B .. ':lines', tenant .. US .. rank, 1)
local vtc, served, waiting = state()
local hr = headroom()
local mine = key(me, hr, vtc, served)
local place = 1
for _, w in ipairs(waiting) do
  if w.id ~= ticket and less(key(w, hr, vtc, served), mine) then place = place + 1 end
end
return {'queued', place}
"""
)

# KEYS: base. ARGV: policy, channel prefix, deployment, ticket, charge, lease ms. Returns 1 if it was held.
RELEASE = (
    _COMMON
    + r"""
local released = finish(ARGV[4], tonumber(ARGV[5]), true, false)
expire()
dispatch(tonumber(ARGV[6]))
return released and 1 or 0
"""
)

# KEYS: base. ARGV: policy, channel prefix, deployment, ticket, lease ms.
# Returns "cancelled" (was waiting), "released" (had just been granted: given back) or "gone".
CANCEL = (
    _COMMON
    + r"""
local raw = redis.call('HGET', B .. ':wait', ARGV[4])
if raw then
  local w = cjson.decode(raw)
  redis.call('HDEL', B .. ':wait', ARGV[4])
  left_line(w, nil)
  leave(w.t, 0)
  return 'cancelled'
end
if finish(ARGV[4], 0, false, true) then
  dispatch(tonumber(ARGV[5]))
  return 'released'
end
return 'gone'
"""
)

# KEYS: base. ARGV: policy, channel prefix, deployment, lease ms, then tickets to renew.
# Expires dead replicas' slots, fills free ones, renews the caller's. Returns {ms until the next lease expires
# (-1: none), tickets of the caller's that it no longer holds}.
SWEEP = (
    _COMMON
    + r"""
local lease = tonumber(ARGV[4])
expire()
dispatch(lease)
local lost = {}
for i = 5, #ARGV do
  if redis.call('ZSCORE', B .. ':held', ARGV[i]) then
    redis.call('ZADD', B .. ':held', 'XX', now + lease, ARGV[i])
  else
    lost[#lost + 1] = ARGV[i]
  end
end
local first = redis.call('ZRANGE', B .. ':held', 0, 0, 'WITHSCORES')
local next_expiry = -1
if #first > 0 then next_expiry = tonumber(first[2]) - now end
return {next_expiry, lost}
"""
)
