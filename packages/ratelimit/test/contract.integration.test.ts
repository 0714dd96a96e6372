import { useRedis, useRedisCluster } from '@oms/testkit';
import { describe, expect, it } from 'vitest';
import {
  type Algorithm,
  fixedWindow,
  gcra,
  limitAll,
  memoryStore,
  type RateLimitStore,
  rateLimiter,
  slidingWindow,
  tokenBucket,
} from '../src/index.js';
import { redisStore } from '../src/redis/index.js';

const redis = useRedis();
const cluster = useRedisCluster({ masters: 3 });

// Slow refill / long windows so a loaded machine cannot change the outcome mid-test.
const algorithms: [string, (limit: number) => Algorithm][] = [
  ['tokenBucket', (n) => tokenBucket({ capacity: n, refillPerSec: n / 3600 })],
  ['gcra', (n) => gcra({ limit: n, periodMs: 3_600_000 })],
  ['slidingWindow counter', (n) => slidingWindow({ limit: n, windowMs: 3_600_000 })],
  ['slidingWindow log', (n) => slidingWindow({ limit: n, windowMs: 3_600_000, mode: 'log' })],
  ['fixedWindow', (n) => fixedWindow({ limit: n, windowMs: 3_600_000 })],
];

let seq = 0;
const backends: [
  string,
  () => {
    store: RateLimitStore;
    raw?: { pttl(k: string): Promise<number>; keys?: (p: string) => Promise<string[]> };
    prefix: string;
  },
][] = [
  ['memory', () => ({ store: memoryStore({ maxKeys: 1000 }), prefix: '' })],
  [
    'redis',
    () => {
      const c = redis.client();
      const prefix = `${redis.prefix}${++seq}:`;
      return { store: redisStore({ redis: c, prefix }), raw: c, prefix };
    },
  ],
  [
    'cluster',
    () => {
      const c = cluster.client();
      const prefix = `${cluster.prefix}${++seq}:`;
      return { store: redisStore({ redis: c, prefix }), raw: c, prefix };
    },
  ],
];

describe.each(backends)('contract on %s', (_backend, makeStore) => {
  describe.each(algorithms)('%s', (_alg, algorithm) => {
    it('admits exactly the limit, then denies with a retry hint, and keeps keys apart', async () => {
      const { store } = makeStore();
      const l = rateLimiter({ name: 'c', algorithm: algorithm(5), store, timeoutMs: 5000 });
      const ds = [];
      for (let i = 0; i < 7; i++) ds.push(await l.consume('u1'));
      expect(ds.map((d) => d.allowed)).toEqual([true, true, true, true, true, false, false]);
      expect(ds.map((d) => d.remaining)).toEqual([4, 3, 2, 1, 0, 0, 0]);
      expect(ds[5]!.retryAfterMs).toBeGreaterThan(0);
      expect(ds[5]!.limit).toBe(5);
      expect(ds[5]!.policy.name).toBe('c');
      expect((await l.consume('u2')).allowed).toBe(true);
    });

    it('charges cost, and peek does not charge', async () => {
      const { store } = makeStore();
      const l = rateLimiter({ name: 'c', algorithm: algorithm(10), store, timeoutMs: 5000 });
      expect(await l.peek('k')).toMatchObject({ allowed: true, remaining: 10 });
      expect(await l.consume('k', { cost: 6 })).toMatchObject({ allowed: true, remaining: 4 });
      expect(await l.consume('k', { cost: 5 })).toMatchObject({ allowed: false, remaining: 4 });
      expect(await l.peek('k')).toMatchObject({ allowed: true, remaining: 4 });
      expect(await l.consume('k', { cost: 4 })).toMatchObject({ allowed: true, remaining: 0 });
      await l.reset('k');
      expect((await l.peek('k')).remaining).toBe(10);
    });

    it('limitAll charges every scope or none, and names the denying scope', async () => {
      const { store } = makeStore();
      const a = rateLimiter({ name: 'global', algorithm: algorithm(10), store, timeoutMs: 5000 });
      const b = rateLimiter({ name: 'user', algorithm: algorithm(2), store, timeoutMs: 5000 });
      const scopes = [
        { limiter: a, key: 'all' },
        { limiter: b, key: 'u1' },
      ];
      expect((await limitAll(scopes)).allowed).toBe(true);
      expect((await limitAll(scopes)).allowed).toBe(true);
      const r = await limitAll(scopes);
      expect(r.allowed).toBe(false);
      expect(r.deniedBy).toEqual({ index: 1, name: 'user', key: 'u1' });
      expect((await a.peek('all')).remaining).toBe(8);
      expect((await b.peek('u1')).remaining).toBe(0);
    });
  });
});

describe.each(backends.slice(1))('keys on %s', (_backend, makeStore) => {
  it.each(algorithms)('%s gives every key it writes a TTL and a hash tag', async (_alg, algorithm) => {
    const { store, raw, prefix } = makeStore();
    const l = rateLimiter({ name: 'ttl', algorithm: algorithm(3), store, timeoutMs: 5000 });
    await l.consume('k1');
    const ttl = await raw!.pttl(`${prefix}{ttl:k1}`);
    expect(ttl).toBeGreaterThan(0);
  });
});

describe('limitAll across cluster slots', () => {
  it('reserves per slot and refunds on denial, so a denied call charges no scope', async () => {
    const store = redisStore({ redis: cluster.client(), prefix: `${cluster.prefix}x:` });
    const mk = (name: string, n: number) =>
      rateLimiter({
        name,
        algorithm: tokenBucket({ capacity: n, refillPerSec: n / 3600 }),
        store,
        timeoutMs: 5000,
      });
    const g = mk('g', 100);
    const u = mk('u', 1);
    const ip = mk('ip', 100);
    const scopes = [
      { limiter: g, key: 'all' },
      { limiter: u, key: 'u1' },
      { limiter: ip, key: '10.0.0.1' },
    ];
    expect((await limitAll(scopes)).allowed).toBe(true);
    const r = await limitAll(scopes);
    expect(r.allowed).toBe(false);
    expect(r.deniedBy?.name).toBe('u');
    expect((await g.peek('all')).remaining).toBe(99);
    expect((await ip.peek('10.0.0.1')).remaining).toBe(99);
  });

  it('with a shared hashTag every key lands in one slot (one script)', async () => {
    const c = cluster.client();
    const store = redisStore({ redis: c, prefix: `${cluster.prefix}y:`, hashTag: () => 'tenant-1' });
    const a = rateLimiter({
      name: 'a',
      algorithm: gcra({ limit: 2, periodMs: 3_600_000 }),
      store,
      timeoutMs: 5000,
    });
    const b = rateLimiter({
      name: 'b',
      algorithm: fixedWindow({ limit: 1, windowMs: 3_600_000 }),
      store,
      timeoutMs: 5000,
    });
    expect(
      (
        await limitAll([
          { limiter: a, key: 'k' },
          { limiter: b, key: 'k' },
        ])
      ).allowed,
    ).toBe(true);
    expect(
      (
        await limitAll([
          { limiter: a, key: 'k' },
          { limiter: b, key: 'k' },
        ])
      ).deniedBy?.name,
    ).toBe('b');
    expect((await a.peek('k')).remaining).toBe(1);
    const slotA = await c.cluster('KEYSLOT', `${cluster.prefix}y:{tenant-1}a:k`);
    const slotB = await c.cluster('KEYSLOT', `${cluster.prefix}y:{tenant-1}b:k`);
    expect(slotA).toBe(slotB);
    expect(await c.exists(`${cluster.prefix}y:{tenant-1}a:k`)).toBe(1);
  });
});
