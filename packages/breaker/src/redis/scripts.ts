import { createHash } from 'node:crypto';

// KEYS[1] = breaker record (hash), KEYS[2] = probe lease, KEYS[3] = trip votes (zset).
// Times come from the Redis server so instances with skewed clocks agree.
const NOW = `local t = redis.call('TIME') local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`;

/** ARGV: openMs, trips, instance, quorum, channel, name, keyTtlMs. Returns {1, remainingMs, trips} when open. */
export const TRIP = `${NOW}
local st = redis.call('HMGET', KEYS[1], 'state', 'until', 'trips')
if st[1] == 'open' and tonumber(st[2]) > now then
  return {1, tonumber(st[2]) - now, tonumber(st[3]) or 0}
end
local openMs = tonumber(ARGV[1])
local k = tonumber(ARGV[4])
if k > 1 then
  redis.call('ZADD', KEYS[3], now, ARGV[3])
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - openMs)
  redis.call('PEXPIRE', KEYS[3], openMs + 1000)
  local n = redis.call('ZCARD', KEYS[3])
  if n < k then return {0, n, 0} end
  redis.call('DEL', KEYS[3])
end
redis.call('HSET', KEYS[1], 'state', 'open', 'until', now + openMs, 'trips', ARGV[2])
redis.call('PEXPIRE', KEYS[1], openMs + tonumber(ARGV[7]))
redis.call('DEL', KEYS[2])
redis.call('PUBLISH', ARGV[5], cjson.encode({t = 'open', n = ARGV[6], r = openMs, k = tonumber(ARGV[2]), i = ARGV[3]}))
return {1, openMs, tonumber(ARGV[2])}`;

/**
 * ARGV: instance, leaseMs. Returns {1} lease granted (SET NX PX, or renewed by its holder), {0} held elsewhere,
 * {-1} the shared record is closed, {-2, remainingMs, trips} still open.
 */
export const PROBE = `${NOW}
local st = redis.call('HMGET', KEYS[1], 'state', 'until', 'trips')
if st[1] ~= 'open' then return {-1} end
if tonumber(st[2]) > now then return {-2, tonumber(st[2]) - now, tonumber(st[3]) or 0} end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return {1} end
if redis.call('GET', KEYS[2]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
  return {1}
end
return {0}`;

/** ARGV: instance, channel, name, shared ('1' | '0'). Closes the shared record if we may; drops our vote. */
export const CLOSE = `redis.call('ZREM', KEYS[3], ARGV[1])
if ARGV[4] ~= '1' then return 0 end
if redis.call('HGET', KEYS[1], 'state') ~= 'open' then return 0 end
local owner = redis.call('GET', KEYS[2])
if owner and owner ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'state', 'closed', 'trips', 0)
redis.call('DEL', KEYS[2])
redis.call('PUBLISH', ARGV[2], cjson.encode({t = 'close', n = ARGV[3], i = ARGV[1]}))
return 1`;

/** Returns {0} closed or {1, remainingMs (may be <= 0: half-open), trips}. */
export const READ = `${NOW}
local st = redis.call('HMGET', KEYS[1], 'state', 'until', 'trips')
if st[1] ~= 'open' then return {0} end
return {1, tonumber(st[2]) - now, tonumber(st[3]) or 0}`;

export const sha1 = (s: string): string => createHash('sha1').update(s).digest('hex');
