import { createHash } from 'node:crypto';

// Times come from the server's TIME so every client agrees on expiry. Keys of one lock share a hash tag,
// so every script touches one slot and runs unchanged on Redis Cluster.

/**
 * KEYS: writer, readers, fence, intents, waiters. ARGV: owner, ttlMs, mode ('x' | 's'), intentMs, waitMs.
 * A failed try with `waitMs > 0` marks the key as waited on (in the same atomic step), so the release that
 * frees it knows to PUBLISH; releases nobody waits for publish nothing.
 */
export const ACQUIRE = `
local owner, ttl, intent, wait = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[4]), tonumber(ARGV[5])
-- the uncontended exclusive path: three commands, no clock, no reader or intent sets
if ARGV[3] == 'x' and redis.call('EXISTS', KEYS[2]) == 0 and redis.call('SET', KEYS[1], owner, 'NX', 'PX', ttl) then
  if intent > 0 then redis.call('ZREM', KEYS[4], owner) end
  return {1, redis.call('INCR', KEYS[3])}
end
local now
local function clock()
  if not now then
    local t = redis.call('TIME')
    now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
  return now
end
local function waiting(r)
  if wait > 0 and redis.call('PTTL', KEYS[5]) < wait then redis.call('SET', KEYS[5], 1, 'PX', wait) end
  return r
end
local wttl = redis.call('PTTL', KEYS[1])
local readers = redis.call('EXISTS', KEYS[2]) == 1
if readers then redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', clock()) end
if ARGV[3] == 'x' then
  local block = wttl
  if readers then
    local top = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
    if top[2] then
      local r = tonumber(top[2]) - clock()
      if r > block then block = r end
    end
  end
  if block > 0 then
    if intent > 0 then
      redis.call('ZADD', KEYS[4], clock() + intent, owner)
      if redis.call('PTTL', KEYS[4]) < intent then redis.call('PEXPIRE', KEYS[4], intent) end
    end
    return waiting({0, block})
  end
  redis.call('SET', KEYS[1], owner, 'PX', ttl)
  if intent > 0 then redis.call('ZREM', KEYS[4], owner) end
else
  if wttl > 0 then return waiting({0, wttl}) end
  if redis.call('EXISTS', KEYS[4]) == 1 then
    redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', clock())
    if redis.call('ZCARD', KEYS[4]) > 0 then return waiting({0, -1}) end
  end
  redis.call('ZADD', KEYS[2], clock() + ttl, owner)
  if redis.call('PTTL', KEYS[2]) < ttl then redis.call('PEXPIRE', KEYS[2], ttl) end
end
return {1, redis.call('INCR', KEYS[3])}
`;

/**
 * The fair acquire. KEYS: writer, readers, fence, queue, queue expiries, waiters. ARGV: owner, ttlMs, mode
 * ('x' | 's'), waitMs. Waiters queue by arrival (member `<mode>:<owner>`, scored by place) for `waitMs`,
 * refreshed on every try; a try succeeds when the holders allow it and no conflicting waiter is ahead: a
 * writer passes nobody, a reader passes only readers.
 */
export const ACQUIRE_FAIR = `
local owner, ttl, mode, wait = ARGV[1], tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local me = mode .. ':' .. owner
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('EXISTS', KEYS[5]) == 1 then
  for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', now)) do redis.call('ZREM', KEYS[4], m) end
  redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now)
end
local place = redis.call('ZSCORE', KEYS[4], me)
local upto = place and ('(' .. place) or '+inf'
local ahead = false
if mode == 'x' then
  ahead = #redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', upto, 'LIMIT', 0, 1) > 0
else
  for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', upto)) do
    if string.sub(m, 1, 1) == 'x' then
      ahead = true
      break
    end
  end
end
local block = redis.call('PTTL', KEYS[1])
if redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  if mode == 'x' then
    local top = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
    if top[2] and tonumber(top[2]) - now > block then block = tonumber(top[2]) - now end
  end
end
if block > 0 or ahead then
  if wait > 0 then
    if not place then
      local last = redis.call('ZRANGE', KEYS[4], -1, -1, 'WITHSCORES')
      redis.call('ZADD', KEYS[4], (last[2] and tonumber(last[2]) or 0) + 1, me)
    end
    redis.call('ZADD', KEYS[5], now + wait, me)
    for i = 4, 5 do
      if redis.call('PTTL', KEYS[i]) < wait then redis.call('PEXPIRE', KEYS[i], wait) end
    end
    if redis.call('PTTL', KEYS[6]) < wait then redis.call('SET', KEYS[6], 1, 'PX', wait) end
  end
  if block > 0 then return {0, block} end
  return {0, -1}
end
if place then
  redis.call('ZREM', KEYS[4], me)
  redis.call('ZREM', KEYS[5], me)
end
if mode == 'x' then
  redis.call('SET', KEYS[1], owner, 'PX', ttl)
else
  redis.call('ZADD', KEYS[2], now + ttl, owner)
  if redis.call('PTTL', KEYS[2]) < ttl then redis.call('PEXPIRE', KEYS[2], ttl) end
end
return {1, redis.call('INCR', KEYS[3])}
`;

/** KEYS: queue, queue expiries. ARGV: member, channel, key. Leaves the fair queue and wakes those behind. */
export const CANCEL_FAIR = `
if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('PUBLISH', ARGV[2], ARGV[3])
end
return 0
`;

/** KEYS: writer, readers. ARGV: owner, ttlMs, mode. Returns 1 when still ours (and extended), else 0. */
export const EXTEND = `
local ttl = tonumber(ARGV[2])
if ARGV[3] == 'x' then
  if redis.call('GET', KEYS[1]) == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ttl)
    return 1
  end
  return 0
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local s = redis.call('ZSCORE', KEYS[2], ARGV[1])
if not s or tonumber(s) <= now then return 0 end
redis.call('ZADD', KEYS[2], now + ttl, ARGV[1])
if redis.call('PTTL', KEYS[2]) < ttl then redis.call('PEXPIRE', KEYS[2], ttl) end
return 1
`;

/**
 * KEYS: writer, readers, waiters. ARGV: owner, mode, channel, key. Returns 1 when it was still ours, else 0.
 * Publishes only while a waiter's mark is live: a waiter marks before its last try and subscribes before
 * that, so a release either happens before that try (which then succeeds) or sees the mark.
 */
export const RELEASE = `
local ok = 0
if ARGV[2] == 'x' then
  if redis.call('GET', KEYS[1]) == ARGV[1] then
    redis.call('DEL', KEYS[1])
    ok = 1
  end
else
  local s = redis.call('ZSCORE', KEYS[2], ARGV[1])
  if s then
    redis.call('ZREM', KEYS[2], ARGV[1])
    local t = redis.call('TIME')
    if tonumber(s) > tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) then ok = 1 end
  end
end
if redis.call('EXISTS', KEYS[3]) == 1 then redis.call('PUBLISH', ARGV[3], ARGV[4]) end
return ok
`;

/** KEYS: intents. ARGV: owner, channel, key. Drops a waiting writer's intent and wakes held-back readers. */
export const CANCEL = `
if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then redis.call('PUBLISH', ARGV[2], ARGV[3]) end
return 0
`;

export interface Script {
  readonly source: string;
  readonly sha: string;
}

export const script = (source: string): Script => ({
  source,
  sha: createHash('sha1').update(source).digest('hex'),
});
