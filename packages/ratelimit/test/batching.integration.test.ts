import { useRedis } from '@oms/testkit';
import { describe, expect, it } from 'vitest';
import { fixedWindow, gcra, limitAll, rateLimiter, slidingWindow, tokenBucket } from '../src/index.js';
import { redisStore } from '../src/redis/index.js';

const redis = useRedis();

// Calls made in one tick share one script run: each must still decide exactly as if sent alone. Long
// timeouts: a loaded machine must not turn a decision into the store-error policy.
describe('same-tick calls on one Redis', () => {
  const algorithms = [
    ['tokenBucket', tokenBucket({ capacity: 3, refillPerSec: 3 / 3600 })],
    ['gcra', gcra({ limit: 3, periodMs: 3_600_000 })],
    ['slidingWindow counter', slidingWindow({ limit: 3, windowMs: 3_600_000 })],
    ['slidingWindow log', slidingWindow({ limit: 3, windowMs: 3_600_000, mode: 'log' })],
    ['fixedWindow', fixedWindow({ limit: 3, windowMs: 3_600_000 })],
  ] as const;

  for (const [kind, algorithm] of algorithms) {
    it(`${kind}: repeated keys in one tick see each other's charges, in call order`, async () => {
      const store = redisStore({ redis: redis.client(), prefix: `${redis.prefix}b:` });
      const limiter = rateLimiter({ name: kind.replace(' ', '-'), algorithm, store, timeoutMs: 10_000 });
      const ds = await Promise.all([
        limiter.consume('a'),
        limiter.consume('b'),
        limiter.consume('a'),
        limiter.consume('a', { cost: 2 }),
        limiter.peek('a'),
        limiter.consume('a'),
      ]);
      expect(ds.map((d) => d.allowed)).toEqual([true, true, true, false, true, true]);
      expect(ds.map((d) => d.remaining)).toEqual([2, 2, 1, 1, 1, 0]);
      expect((await limiter.consume('a')).allowed).toBe(false);
      await limiter.close();
    });
  }

  it('limiters with different settings share one send and keep their own limits', async () => {
    const store = redisStore({ redis: redis.client(), prefix: `${redis.prefix}m:` });
    const one = rateLimiter({
      name: 'one',
      algorithm: fixedWindow({ limit: 1, windowMs: 3_600_000 }),
      store,
      timeoutMs: 10_000,
    });
    const two = rateLimiter({
      name: 'two',
      algorithm: tokenBucket({ capacity: 2, refillPerSec: 0.001 }),
      store,
      timeoutMs: 10_000,
    });
    const ds = await Promise.all([one.consume('k'), two.consume('k'), one.consume('k'), two.consume('k')]);
    expect(ds.map((d) => d.allowed)).toEqual([true, true, false, true]);
    expect(ds.map((d) => d.limit)).toEqual([1, 2, 1, 2]);
    await Promise.all([one.close(), two.close()]);
  });
});

describe('same-tick limitAll calls on one Redis', () => {
  it('each stays all or nothing, and later calls see earlier charges', async () => {
    const store = redisStore({ redis: redis.client(), prefix: `${redis.prefix}la:` });
    const opts = { store, timeoutMs: 10_000 };
    const global = rateLimiter({
      name: 'g',
      algorithm: fixedWindow({ limit: 3, windowMs: 3_600_000 }),
      ...opts,
    });
    const user = rateLimiter({
      name: 'u',
      algorithm: fixedWindow({ limit: 2, windowMs: 3_600_000 }),
      ...opts,
    });
    const both = (key: string) =>
      limitAll([
        { limiter: global, key: 'all' },
        { limiter: user, key },
      ]);
    const rs = await Promise.all([both('x'), both('y'), both('x'), both('x'), both('z'), both('y')]);
    expect(rs.map((r) => r.allowed)).toEqual([true, true, true, false, false, false]);
    expect(rs.map((r) => r.deniedBy?.name)).toEqual([undefined, undefined, undefined, 'g', 'g', 'g']);
    // the denied calls charged nothing: the user scopes hold exactly what the admitted calls took
    expect((await user.peek('x')).remaining).toBe(0);
    expect((await user.peek('y')).remaining).toBe(1);
    expect((await user.peek('z')).remaining).toBe(2);
    expect((await global.peek('all')).remaining).toBe(0);
    await Promise.all([global.close(), user.close()]);
  });
});
