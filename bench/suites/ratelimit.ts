import { fixedWindow, limitAll, rateLimiter, tokenBucket } from '@oms/ratelimit';
import { redisStore } from '@oms/ratelimit/redis';
import { Redis } from 'ioredis';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterUnion } from 'rate-limiter-flexible';
import { defineSuite } from '../src/harness.js';

// Capacities so large nothing is ever denied: every library does its full admit path, and
// rate-limiter-flexible never pays for a rejected promise.
const CAP = 1e12;
const KEYS = 1000;
const keys = Array.from({ length: KEYS }, (_, i) => `user:${i}`);
let k = 0;
const nextKey = () => {
  k = (k + 1) % KEYS;
  return keys[k]!;
};

const inFlight =
  <T>(n: number, fn: () => Promise<T>) =>
  () =>
    Promise.all(Array.from({ length: n }, fn));

/** The floor for memory: what a careful developer writes by hand, an async Map-backed token bucket. */
function handwrittenBucket(capacity: number, refillPerSec: number) {
  const buckets = new Map<string, { tokens: number; ts: number }>();
  const rate = refillPerSec / 1000;
  return async (key: string) => {
    const now = Date.now();
    let b = buckets.get(key);
    if (!b) {
      b = { tokens: capacity, ts: now };
      buckets.set(key, b);
    }
    b.tokens = Math.min(capacity, b.tokens + (now - b.ts) * rate);
    b.ts = now;
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return { allowed: true, remaining: Math.floor(b.tokens) };
    }
    return { allowed: false, remaining: 0 };
  };
}

/** The floor for Redis: a minimal token bucket in Lua with server time, one EVALSHA per decision. */
const RAW_TB = `
local v = redis.call('HMGET', KEYS[1], 't', 'ts')
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local cap, rate = tonumber(ARGV[1]), tonumber(ARGV[2])
local tokens, ts = tonumber(v[1]) or cap, tonumber(v[2]) or now
tokens = math.min(cap, tokens + (now - ts) * rate)
local ok = 0
if tokens >= 1 then tokens = tokens - 1; ok = 1 end
redis.call('HSET', KEYS[1], 't', tokens, 'ts', now)
redis.call('PEXPIRE', KEYS[1], 60000)
return {ok, math.floor(tokens)}
`;

export default defineSuite({
  name: 'ratelimit',
  async setup(env) {
    const redis = new Redis(env.redisUrl);
    await redis.flushall();
    const rawSha = (await redis.script('LOAD', RAW_TB)) as string;
    const algorithm = tokenBucket({ capacity: CAP, refillPerSec: CAP });
    const omsMemory = rateLimiter({ name: 'mem', algorithm });
    const store = redisStore({ redis, prefix: 'b:' });
    const omsRedis = rateLimiter({ name: 'red', algorithm, store });
    // the same algorithm class as RateLimiterRedis (a counter per fixed window), for a like-for-like ratio
    const omsRedisFixed = rateLimiter({
      name: 'fw',
      algorithm: fixedWindow({ limit: CAP, windowMs: 60_000 }),
      store,
    });
    const scopes3 = ['global', 'user', 'ip'].map((name) => rateLimiter({ name, algorithm, store }));
    const rlfMemory = new RateLimiterMemory({ points: CAP, duration: 60 });
    const rlfRedis = new RateLimiterRedis({
      storeClient: redis,
      points: CAP,
      duration: 60,
      keyPrefix: 'rlf',
    });
    const rlfUnion = new RateLimiterUnion(
      ...['u1', 'u2', 'u3'].map(
        (p) => new RateLimiterRedis({ storeClient: redis, points: CAP, duration: 60, keyPrefix: p }),
      ),
    );
    const hand = handwrittenBucket(CAP, CAP);
    // warm up: scripts loaded, keys created
    await Promise.all(keys.slice(0, 64).map((key) => omsRedis.consume(key)));
    await limitAll(scopes3.map((limiter) => ({ limiter, key: 'k' })));
    return {
      redis,
      rawSha,
      omsMemory,
      omsRedis,
      omsRedisFixed,
      scopes3,
      rlfMemory,
      rlfRedis,
      rlfUnion,
      hand,
    };
  },
  cases: ({
    redis,
    rawSha,
    omsMemory,
    omsRedis,
    omsRedisFixed,
    scopes3,
    rlfMemory,
    rlfRedis,
    rlfUnion,
    hand,
  }) => [
    { name: 'bare await', fn: async () => {} },
    { name: 'handwritten Map bucket', fn: () => hand(nextKey()) },
    { name: 'oms memory consume', fn: () => omsMemory.consume(nextKey()) },
    { name: 'rlf memory consume', fn: () => rlfMemory.consume(nextKey()) },
    {
      name: 'raw EVALSHA bucket x64',
      ops: 64,
      redis: true,
      fn: inFlight(64, () => redis.evalsha(rawSha, 1, `raw:{${nextKey()}}`, CAP, CAP / 1000)),
    },
    {
      name: 'oms redis consume x64',
      ops: 64,
      redis: true,
      fn: inFlight(64, () => omsRedis.consume(nextKey())),
    },
    {
      name: 'oms redis fixedWindow x64',
      ops: 64,
      redis: true,
      fn: inFlight(64, () => omsRedisFixed.consume(nextKey())),
    },
    {
      name: 'rlf redis consume x64',
      ops: 64,
      redis: true,
      fn: inFlight(64, () => rlfRedis.consume(nextKey())),
    },
    {
      name: 'oms limitAll 3 scopes x64',
      ops: 64,
      redis: true,
      fn: inFlight(64, () => {
        const key = nextKey();
        return limitAll(scopes3.map((limiter) => ({ limiter, key })));
      }),
    },
    { name: 'rlf union of 3 x64', ops: 64, redis: true, fn: inFlight(64, () => rlfUnion.consume(nextKey())) },
  ],
  ratios: [
    {
      name: 'memory: oms / handwritten (time)',
      numerator: 'oms memory consume',
      denominator: 'handwritten Map bucket',
      goal: '<= 1.15',
    },
    {
      name: 'memory: rlf / oms (speedup)',
      numerator: 'rlf memory consume',
      denominator: 'oms memory consume',
      goal: '>= 1.6',
    },
    {
      name: 'redis: oms throughput / raw EVALSHA floor',
      numerator: 'raw EVALSHA bucket x64',
      denominator: 'oms redis consume x64',
      goal: '>= 0.95',
    },
    {
      name: 'redis: rlf / oms token bucket (speedup)',
      numerator: 'rlf redis consume x64',
      denominator: 'oms redis consume x64',
      goal: '>= 1.1',
    },
    {
      name: 'redis: rlf / oms fixedWindow (speedup)',
      numerator: 'rlf redis consume x64',
      denominator: 'oms redis fixedWindow x64',
      goal: '>= 1.1',
    },
    {
      name: 'limitAll 3: rlf union / oms (speedup)',
      numerator: 'rlf union of 3 x64',
      denominator: 'oms limitAll 3 scopes x64',
      goal: '>= 2.5',
    },
    {
      name: 'redis CPU: oms / rlf token bucket',
      numerator: 'oms redis consume x64',
      denominator: 'rlf redis consume x64',
      of: 'redisUsec',
      goal: '<= 0.7',
    },
    {
      name: 'redis CPU: oms fixedWindow / rlf',
      numerator: 'oms redis fixedWindow x64',
      denominator: 'rlf redis consume x64',
      of: 'redisUsec',
      goal: '<= 0.7',
    },
    {
      name: 'redis CPU: oms limitAll 3 / rlf union of 3',
      numerator: 'oms limitAll 3 scopes x64',
      denominator: 'rlf union of 3 x64',
      of: 'redisUsec',
    },
    {
      name: 'redis CPU: oms token bucket / raw EVALSHA floor',
      numerator: 'oms redis consume x64',
      denominator: 'raw EVALSHA bucket x64',
      of: 'redisUsec',
    },
  ],
  async teardown({ redis, omsMemory, omsRedis, omsRedisFixed, scopes3 }) {
    await Promise.all([
      omsMemory.close(),
      omsRedis.close(),
      omsRedisFixed.close(),
      ...scopes3.map((l) => l.close()),
    ]);
    redis.disconnect();
  },
});
