import { createHash } from 'node:crypto';

// Times come from the server's TIME so every client agrees on expiry. Keys of one lock share a hash tag,
// so every script touches one slot and runs unchanged on Redis Cluster.
//
// One hash per lock key (`<prefix>{key}`) keeps what the hot paths read and write together, so an
// uncontended exclusive acquire is HMGET + TIME + HSET and its release HMGET + TIME + HDEL:
//   o  owner of the exclusive hold         e  when that hold lapses (ms, server clock)
//   f  fencing counter (never deleted, so tokens only grow, across expiry and across holders)
//   r  when the last reader's lease lapses  q  when the last writer intent lapses (a hint: see below)
//   n  until when some acquire waits on the key (releases publish only while it is in the future)
// Readers (`:r`), writer intents (`:q`) and the fair queue (`:o`, `:e`) stay sorted sets, scored by expiry
// or place, and are touched only when the hash says they matter.
//
// Replies of the acquire scripts: the fencing token (> 0) when granted; otherwise minus the ms until the
// blocking hold lapses, or 0 when only waiters (intents, queue places) are in the way.

const CLOCK = `local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)`;

/**
 * KEYS: lock, readers, intents. ARGV: owner, ttlMs, mode ('x', 's', or 'X' for a writer whose earlier try
 * registered an intent), intentMs, waitMs. A failed try with `waitMs > 0` marks the key as waited on (in
 * the same atomic step), so the release that frees it knows to PUBLISH; releases nobody waits for publish
 * nothing.
 */
export const ACQUIRE = `
local owner, ttl, mode = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local h = redis.call('HMGET', KEYS[1], 'e', 'f', 'r', 'q', 'n')
${CLOCK}
local held, readers = tonumber(h[1]) or 0, tonumber(h[3]) or 0
local fence = (tonumber(h[2]) or 0) + 1
local function waiting(reply, set)
  local wait = tonumber(ARGV[5])
  if wait > 0 and (tonumber(h[5]) or 0) < now + wait then
    set[#set + 1] = 'n'
    set[#set + 1] = string.format('%d', now + wait)
  end
  if #set > 0 then redis.call('HSET', KEYS[1], unpack(set)) end
  return reply
end
if mode ~= 's' then
  if held <= now and readers <= now then
    redis.call('HSET', KEYS[1], 'o', owner, 'e', string.format('%d', now + ttl), 'f', string.format('%d', fence))
    if mode == 'X' then redis.call('ZREM', KEYS[3], owner) end
    return fence
  end
  local set = {}
  local intent = tonumber(ARGV[4])
  if intent > 0 then
    redis.call('ZADD', KEYS[3], now + intent, owner)
    if redis.call('PTTL', KEYS[3]) < intent then redis.call('PEXPIRE', KEYS[3], intent) end
    if (tonumber(h[4]) or 0) < now + intent then
      set[1] = 'q'
      set[2] = string.format('%d', now + intent)
    end
  end
  return waiting(-(math.max(held, readers) - now), set)
end
if held > now then return waiting(-(held - now), {}) end
-- the intent hint is the latest intent's expiry; cancelled and granted intents leave it behind, so a hint
-- in the future is checked against the set itself (and dropped when the set holds no live intent)
if (tonumber(h[4]) or 0) > now then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
  if redis.call('ZCARD', KEYS[3]) > 0 then return waiting(0, {}) end
  redis.call('HDEL', KEYS[1], 'q')
end
if readers > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now) end
redis.call('ZADD', KEYS[2], now + ttl, owner)
if redis.call('PTTL', KEYS[2]) < ttl then redis.call('PEXPIRE', KEYS[2], ttl) end
redis.call('HSET', KEYS[1], 'f', string.format('%d', fence), 'r', string.format('%d', math.max(readers, now + ttl)))
return fence
`;

/**
 * The fair acquire. KEYS: lock, readers, queue, queue expiries. ARGV: owner, ttlMs, mode ('x' | 's'),
 * waitMs. Waiters queue by arrival (member `<mode>:<owner>`, scored by place) for `waitMs`, refreshed on
 * every try; a try succeeds when the holders allow it and no conflicting waiter is ahead: a writer passes
 * nobody, a reader passes only readers.
 */
export const ACQUIRE_FAIR = `
local owner, ttl, mode, wait = ARGV[1], tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local me = mode .. ':' .. owner
${CLOCK}
local place, ahead = nil, false
if redis.call('EXISTS', KEYS[3]) == 1 then
  for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now)) do redis.call('ZREM', KEYS[3], m) end
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
  place = redis.call('ZSCORE', KEYS[3], me)
  local upto = place and ('(' .. place) or '+inf'
  if mode == 'x' then
    ahead = #redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', upto, 'LIMIT', 0, 1) > 0
  else
    for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', upto)) do
      if string.sub(m, 1, 1) == 'x' then
        ahead = true
        break
      end
    end
  end
end
local h = redis.call('HMGET', KEYS[1], 'e', 'f', 'r', 'n')
local held, readers = tonumber(h[1]) or 0, tonumber(h[3]) or 0
local block = held - now
if mode == 'x' and readers > held then block = readers - now end
if block > 0 or ahead then
  if wait > 0 then
    if not place then
      local last = redis.call('ZRANGE', KEYS[3], -1, -1, 'WITHSCORES')
      redis.call('ZADD', KEYS[3], (last[2] and tonumber(last[2]) or 0) + 1, me)
    end
    redis.call('ZADD', KEYS[4], now + wait, me)
    for i = 3, 4 do
      if redis.call('PTTL', KEYS[i]) < wait then redis.call('PEXPIRE', KEYS[i], wait) end
    end
    if (tonumber(h[4]) or 0) < now + wait then redis.call('HSET', KEYS[1], 'n', string.format('%d', now + wait)) end
  end
  if block > 0 then return -block end
  return 0
end
if place then
  redis.call('ZREM', KEYS[3], me)
  redis.call('ZREM', KEYS[4], me)
end
local fence = (tonumber(h[2]) or 0) + 1
if mode == 'x' then
  redis.call('HSET', KEYS[1], 'o', owner, 'e', string.format('%d', now + ttl), 'f', string.format('%d', fence))
else
  if readers > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now) end
  redis.call('ZADD', KEYS[2], now + ttl, owner)
  if redis.call('PTTL', KEYS[2]) < ttl then redis.call('PEXPIRE', KEYS[2], ttl) end
  redis.call('HSET', KEYS[1], 'f', string.format('%d', fence), 'r', string.format('%d', math.max(readers, now + ttl)))
end
return fence
`;

/** KEYS: queue, queue expiries. ARGV: member, channel, key. Leaves the fair queue and wakes those behind. */
export const CANCEL_FAIR = `
if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('PUBLISH', ARGV[2], ARGV[3])
end
return 0
`;

/** KEYS: lock, readers. ARGV: owner, ttlMs, mode. Returns 1 when still ours (and extended), else 0. */
export const EXTEND = `
local ttl = tonumber(ARGV[2])
${CLOCK}
if ARGV[3] == 'x' then
  local h = redis.call('HMGET', KEYS[1], 'o', 'e')
  if h[1] ~= ARGV[1] or (tonumber(h[2]) or 0) <= now then return 0 end
  redis.call('HSET', KEYS[1], 'e', string.format('%d', now + ttl))
  return 1
end
local s = redis.call('ZSCORE', KEYS[2], ARGV[1])
if not s or tonumber(s) <= now then return 0 end
redis.call('ZADD', KEYS[2], now + ttl, ARGV[1])
if redis.call('PTTL', KEYS[2]) < ttl then redis.call('PEXPIRE', KEYS[2], ttl) end
if (tonumber(redis.call('HGET', KEYS[1], 'r')) or 0) < now + ttl then
  redis.call('HSET', KEYS[1], 'r', string.format('%d', now + ttl))
end
return 1
`;

/**
 * KEYS: lock, readers. ARGV: owner, mode, channel, key. Returns 1 when it was still ours, else 0.
 * Publishes only while a waiter's mark is live: a waiter marks before its last try and subscribes before
 * that, so a release either happens before that try (which then succeeds) or sees the mark.
 */
export const RELEASE = `
${CLOCK}
local ok, mark = 0
if ARGV[2] == 'x' then
  local h = redis.call('HMGET', KEYS[1], 'o', 'e', 'n')
  if h[1] == ARGV[1] then
    if (tonumber(h[2]) or 0) > now then ok = 1 end
    redis.call('HDEL', KEYS[1], 'o', 'e')
  end
  mark = h[3]
else
  local s = redis.call('ZSCORE', KEYS[2], ARGV[1])
  if s then
    redis.call('ZREM', KEYS[2], ARGV[1])
    if tonumber(s) > now then ok = 1 end
    -- the readers' hint follows the set: the latest lease left, or none
    local top = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
    if top[2] then redis.call('HSET', KEYS[1], 'r', top[2]) else redis.call('HDEL', KEYS[1], 'r') end
  end
  mark = redis.call('HGET', KEYS[1], 'n')
end
if mark then
  if tonumber(mark) > now then redis.call('PUBLISH', ARGV[3], ARGV[4]) else redis.call('HDEL', KEYS[1], 'n') end
end
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
