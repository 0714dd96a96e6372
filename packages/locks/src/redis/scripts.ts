import { createHash } from 'node:crypto';

// Times come from the server's TIME so every client agrees on expiry. Keys of one lock share a hash tag,
// so every script touches one slot and runs unchanged on Redis Cluster.

/** KEYS: writer, readers, fence, intents. ARGV: owner, ttlMs, mode ('x' | 's'), intentMs. */
export const ACQUIRE = `
local owner, ttl, intent = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[4])
local now
local function clock()
  if not now then
    local t = redis.call('TIME')
    now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
  return now
end
local wttl = redis.call('PTTL', KEYS[1])
-- the uncontended exclusive path touches neither the clock nor the reader and intent sets
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
    return {0, block}
  end
  redis.call('SET', KEYS[1], owner, 'PX', ttl)
  if intent > 0 then redis.call('ZREM', KEYS[4], owner) end
else
  if wttl > 0 then return {0, wttl} end
  if redis.call('EXISTS', KEYS[4]) == 1 then
    redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', clock())
    if redis.call('ZCARD', KEYS[4]) > 0 then return {0, -1} end
  end
  redis.call('ZADD', KEYS[2], clock() + ttl, owner)
  if redis.call('PTTL', KEYS[2]) < ttl then redis.call('PEXPIRE', KEYS[2], ttl) end
end
return {1, redis.call('INCR', KEYS[3])}
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

/** KEYS: writer, readers. ARGV: owner, mode, channel, key. Returns 1 when it was still ours, else 0. */
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
redis.call('PUBLISH', ARGV[3], ARGV[4])
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
