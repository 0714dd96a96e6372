import { forkWorkers, useRedis, useRedisCluster } from '@oms/testkit';
import { describe, expect, it } from 'vitest';
import { fixedWindow, isOmsRatelimitError, limitAll, rateLimiter } from '../src/index.js';
import { redisStore } from '../src/redis/index.js';
import type { LimitAllInput, LimitAllResultRow } from './fixtures/limit-all.js';

const redis = useRedis();
const cluster = useRedisCluster({ masters: 3 });
const worker = new URL('./fixtures/limit-all.ts', import.meta.url).pathname;

const USERS = 20;
const USER_LIMIT = 5;
const GLOBAL_LIMIT = 60; // below USERS x USER_LIMIT, so both scopes deny some calls

async function race(conn: Pick<LimitAllInput, 'url' | 'startupNodes' | 'prefix' | 'hashTag'>) {
  const rows = await forkWorkers<LimitAllInput, LimitAllResultRow>(4, worker, {
    ...conn,
    globalLimit: GLOBAL_LIMIT,
    userLimit: USER_LIMIT,
    users: USERS,
    calls: 150,
    concurrency: 16,
  });
  const perUser = Array.from({ length: USERS }, (_, u) =>
    rows.reduce((s, r) => s + r.admittedPerUser[u]!, 0),
  );
  const admitted = perUser.reduce((a, b) => a + b, 0);
  const deniedBy = rows.reduce<Record<string, number>>((acc, r) => {
    for (const [k, v] of Object.entries(r.deniedBy)) acc[k] = (acc[k] ?? 0) + v;
    return acc;
  }, {});
  return { perUser, admitted, deniedBy };
}

async function remaining(conn: {
  redis: Parameters<typeof redisStore>[0]['redis'];
  prefix: string;
  hashTag: boolean;
}) {
  const store = redisStore({
    redis: conn.redis,
    prefix: conn.prefix,
    ...(conn.hashTag ? { hashTag: () => 'shared' } : {}),
  });
  const global = rateLimiter({
    name: 'global',
    algorithm: fixedWindow({ limit: GLOBAL_LIMIT, windowMs: 3_600_000 }),
    store,
    timeoutMs: 10_000,
  });
  const user = rateLimiter({
    name: 'user',
    algorithm: fixedWindow({ limit: USER_LIMIT, windowMs: 3_600_000 }),
    store,
    timeoutMs: 10_000,
  });
  // a peek the store answered, never one the store-error policy made up
  const read = async (l: typeof user, key: string) => {
    const d = await l.peek(key);
    expect(d.degraded, `peek of ${key} was answered by the store`).toBeUndefined();
    return d.remaining;
  };
  const users = [];
  for (let u = 0; u < USERS; u++) users.push(await read(user, `u${u}`));
  return { global: await read(global, 'all'), users };
}

function check(r: Awaited<ReturnType<typeof race>>, left: Awaited<ReturnType<typeof remaining>>) {
  // every scope was charged exactly by the admitted calls: denied calls (600 - admitted) charged nothing
  expect(r.admitted).toBe(GLOBAL_LIMIT);
  expect(left.global).toBe(GLOBAL_LIMIT - r.admitted);
  expect(left.users).toEqual(r.perUser.map((n) => USER_LIMIT - n));
  expect(r.deniedBy.global).toBeGreaterThan(0);
  expect(r.deniedBy.user).toBeGreaterThan(0);
}

describe('limitAll atomicity under concurrency (4 processes x 16 callers)', () => {
  it('on Redis (one script per call): a denied call never changes any scope', async () => {
    const prefix = `${redis.prefix}la:`;
    const r = await race({ url: redis.url, prefix, hashTag: false });
    check(r, await remaining({ redis: redis.client(), prefix, hashTag: false }));
  }, 120_000);

  it('on Cluster with a shared hashTag (one script per call)', async () => {
    const prefix = `${cluster.prefix}la1:`;
    const r = await race({ startupNodes: [...cluster.startupNodes], prefix, hashTag: true });
    check(r, await remaining({ redis: cluster.client(), prefix, hashTag: true }));
  }, 120_000);

  it('on Cluster across slots (reserve and refund): no scope keeps a charge for a denied call', async () => {
    const prefix = `${cluster.prefix}la2:`;
    const r = await race({ startupNodes: [...cluster.startupNodes], prefix, hashTag: false });
    const left = await remaining({ redis: cluster.client(), prefix, hashTag: false });
    // spurious denials are possible while a reservation is out, so fewer may pass; never more, never leaked
    expect(r.admitted).toBeLessThanOrEqual(GLOBAL_LIMIT);
    expect(left.global).toBe(GLOBAL_LIMIT - r.admitted);
    expect(left.users).toEqual(r.perUser.map((n) => USER_LIMIT - n));
  }, 120_000);
});

describe('limitAll across stores', () => {
  const mk = (name: string, limit: number, store: Parameters<typeof rateLimiter>[0]['store']) =>
    rateLimiter({ name, algorithm: fixedWindow({ limit, windowMs: 3_600_000 }), store, timeoutMs: 10_000 });

  it('Redis stores on one ioredis client (own prefixes) are one atomic script', async () => {
    const client = redis.client();
    const a = mk('a', 3, redisStore({ redis: client, prefix: `${redis.prefix}s1:` }));
    const b = mk('b', 1, redisStore({ redis: client, prefix: `${redis.prefix}s2:` }));
    const scopes = [
      { limiter: a, key: 'k' },
      { limiter: b, key: 'k' },
    ];
    expect((await limitAll(scopes)).allowed).toBe(true);
    const r = await limitAll(scopes);
    expect(r).toMatchObject({ allowed: false, deniedBy: { index: 1, name: 'b' } });
    expect(r.decisions.map((d) => d.degraded)).toEqual([undefined, undefined]);
    expect((await a.peek('k')).remaining).toBe(2);
    // each store wrote under its own prefix
    expect(await client.exists(`${redis.prefix}s1:{a:k}`, `${redis.prefix}s2:{b:k}`)).toBe(2);
  });

  it('Redis stores on two clients, or memory with Redis, throw ERR_OMS_RATELIMIT_MIXED_STORES', async () => {
    const a = mk('a', 3, redisStore({ redis: redis.client(), prefix: `${redis.prefix}s3:` }));
    const b = mk('b', 3, redisStore({ redis: redis.client(), prefix: `${redis.prefix}s3:` }));
    const m = mk('m', 3, undefined);
    for (const other of [b, m]) {
      const e = await limitAll([
        { limiter: a, key: 'k' },
        { limiter: other, key: 'k' },
      ]).catch((x: unknown) => x);
      expect(isOmsRatelimitError(e) && e.code).toBe('ERR_OMS_RATELIMIT_MIXED_STORES');
    }
    expect((await a.peek('k')).remaining).toBe(3);
  });
});
