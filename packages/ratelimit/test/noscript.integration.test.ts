import { useRedis } from '@oms/testkit';
import { describe, expect, it } from 'vitest';
import { fixedWindow, gcra, rateLimiter, tokenBucket } from '../src/index.js';
import { redisStore } from '../src/redis/index.js';
import { SCRIPTS } from '../src/redis/scripts.js';

// SCRIPT FLUSH empties the cache of every client of the server: on a shared one it would send other files'
// in-flight calls through the NOSCRIPT fallback (a re-sent call may then run after a later one), so these
// run on a Redis of their own.
const redis = useRedis({ dedicated: true });

describe('redis scripts after SCRIPT FLUSH (NOSCRIPT)', () => {
  it('fall back to EVAL after SCRIPT FLUSH (NOSCRIPT) and keep working', async () => {
    const c = redis.client();
    const l = rateLimiter({
      name: 'ns',
      timeoutMs: 5000,
      algorithm: gcra({ limit: 5, periodMs: 3_600_000 }),
      store: redisStore({ redis: c, prefix: `${redis.prefix}ns:` }),
    });
    expect((await l.consume('k')).remaining).toBe(4);
    await c.script('FLUSH');
    expect((await l.consume('k')).remaining).toBe(3);
  });

  it('a script cache flushed on the server falls back to the source, once per send', async () => {
    const client = redis.client();
    const store = redisStore({ redis: client, prefix: `${redis.prefix}f:` });
    const limiter = rateLimiter({
      name: 'f',
      algorithm: fixedWindow({ limit: 5, windowMs: 3_600_000 }),
      store,
      timeoutMs: 10_000,
    });
    await limiter.consume('k');
    await client.script('FLUSH');
    const ds = await Promise.all([limiter.consume('k'), limiter.consume('k'), limiter.consume('x')]);
    expect(ds.map((d) => [d.allowed, d.remaining, d.degraded])).toEqual([
      [true, 3, undefined],
      [true, 2, undefined],
      [true, 4, undefined],
    ]);
    await limiter.close();
  });

  it('on a server that knows some of the scripts, same-tick calls on one key still run in call order', async () => {
    // another client already loaded the token bucket's single-call script, not the batch one: a batch sent
    // as EVALSHA would come back NOSCRIPT and, re-sent, run after the single calls sent behind it
    const client = redis.client();
    await client.script('FLUSH');
    await client.script('LOAD', SCRIPTS[1]!.src);
    const limiter = rateLimiter({
      name: 'order',
      algorithm: tokenBucket({ capacity: 3, refillPerSec: 3 / 3600 }),
      store: redisStore({ redis: client, prefix: `${redis.prefix}o:` }),
      timeoutMs: 10_000,
    });
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
    await limiter.close();
  });
});
