import { postgresLocks } from '@oms/locks/postgres';
import { redisLocks } from '@oms/locks/redis';
import { Redis } from 'ioredis';
import pg from 'pg';
import { Mutex } from 'redis-semaphore';
import Redlock from 'redlock';
import { defineSuite } from '../src/harness.js';

// Every case is one uncontended acquire + release pair, two round trips on every side; the "x8" cases run
// 8 pairs at once on different keys (8 workers sharing the one Redis client, or the one pg pool, as every
// anchor does). Keys rotate over a fixed set so per-key state (our fencing counters) stays bounded. Ours
// use acquire's defaults (it may wait, so its tries mark nothing but would subscribe to wake-ups if they
// failed), as an application would. Cases marked redis: true also report the Redis server's CPU per pair.
const KEYS = 512;
const keys = Array.from({ length: KEYS }, (_, i) => `bench:${i}`);
let k = 0;
const nextKey = () => {
  k = (k + 1) % KEYS;
  return keys[k]!;
};
const x8 = (fn: () => Promise<unknown>) => () => Promise.all(Array.from({ length: 8 }, fn));

const RAW_DEL = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;

export default defineSuite({
  name: 'locks',
  async setup(env) {
    const redis = new Redis(env.redisUrl);
    const delSha = (await redis.script('LOAD', RAW_DEL)) as string;
    const pool = new pg.Pool({ connectionString: env.postgresUrl, max: 10 });
    const rawClients = await Promise.all(Array.from({ length: 8 }, () => pool.connect()));
    for (const c of rawClients) c.release();
    const omsRedis = redisLocks({ redis, prefix: 'bench:oms:', ttlMs: 10_000 });
    const advisory = postgresLocks({ pool, strategy: 'advisory', namespace: 'bench' });
    const lease = postgresLocks({ pool, strategy: 'lease', namespace: 'bench' });
    await lease.migrate();
    // fair: true, uncontended: what keeping waiters in arrival order costs when nobody waits
    const omsRedisFair = redisLocks({ redis, prefix: 'bench:fair:', ttlMs: 10_000, fair: true });
    const leaseFair = postgresLocks({ pool, strategy: 'lease', namespace: 'bench-fair', fair: true });
    // @types/redlock 4 describes ioredis 4's eval signature; ioredis 5 accepts the same calls at runtime.
    const redlock = new Redlock([redis as unknown as Redlock.CompatibleRedisClient], { retryCount: 0 });
    let n = 0;
    const rawRedis = async () => {
      const key = `bench:raw:${nextKey()}`;
      const token = `${process.pid}:${++n}`;
      if ((await redis.set(key, token, 'PX', 10_000, 'NX')) !== 'OK') throw new Error('raw lock taken');
      await redis.evalsha(delSha, 1, key, token);
    };
    const oms = (locks: typeof omsRedis) => async () => {
      const l = await locks.acquire(nextKey());
      await l.release();
    };
    const redlockPair = async () => {
      const l = await redlock.lock(`bench:redlock:${nextKey()}`, 10_000);
      await l.unlock();
    };
    const semaphorePair = async () => {
      const m = new Mutex(redis, `bench:sem:${nextKey()}`, { lockTimeout: 10_000, acquireTimeout: 1_000 });
      await m.acquire();
      await m.release();
    };
    let advKey = 1;
    const rawAdvisory = async () => {
      const c = await pool.connect();
      try {
        const key = 900_000 + (advKey++ % KEYS);
        const { rows } = await c.query('select pg_try_advisory_lock($1) as ok', [key]);
        if (!rows[0].ok) throw new Error('raw advisory lock taken');
        await c.query('select pg_advisory_unlock($1)', [key]);
      } finally {
        c.release();
      }
    };
    return {
      redis,
      pool,
      omsRedis,
      omsRedisFair,
      advisory,
      lease,
      leaseFair,
      rawRedis,
      oms,
      redlockPair,
      semaphorePair,
      rawAdvisory,
    };
  },
  cases: (c) => [
    { name: 'raw redis SET NX PX + Lua del', redis: true, fn: c.rawRedis },
    { name: 'oms redis', redis: true, fn: c.oms(c.omsRedis) },
    { name: 'redlock', redis: true, fn: c.redlockPair },
    { name: 'redis-semaphore', redis: true, fn: c.semaphorePair },
    { name: 'raw pg try_advisory + unlock', fn: c.rawAdvisory },
    { name: 'oms pg advisory', fn: c.oms(c.advisory) },
    { name: 'oms pg lease', fn: c.oms(c.lease) },
    { name: 'oms redis fair', redis: true, fn: c.oms(c.omsRedisFair) },
    { name: 'oms pg lease fair', fn: c.oms(c.leaseFair) },
    { name: 'raw redis x8', redis: true, ops: 8, fn: x8(c.rawRedis) },
    { name: 'oms redis x8', redis: true, ops: 8, fn: x8(c.oms(c.omsRedis)) },
    { name: 'redlock x8', redis: true, ops: 8, fn: x8(c.redlockPair) },
    { name: 'redis-semaphore x8', redis: true, ops: 8, fn: x8(c.semaphorePair) },
    { name: 'raw pg advisory x8', ops: 8, fn: x8(c.rawAdvisory) },
    { name: 'oms pg advisory x8', ops: 8, fn: x8(c.oms(c.advisory)) },
    { name: 'oms pg lease x8', ops: 8, fn: x8(c.oms(c.lease)) },
  ],
  ratios: [
    {
      name: 'redis: oms throughput / raw floor',
      numerator: 'raw redis SET NX PX + Lua del',
      denominator: 'oms redis',
      goal: '>= 0.9',
    },
    {
      name: 'redis: redis-semaphore time / oms',
      numerator: 'redis-semaphore',
      denominator: 'oms redis',
      goal: '> 1',
    },
    { name: 'redis: redlock time / oms', numerator: 'redlock', denominator: 'oms redis', goal: '> 1' },
    {
      name: 'redis: oms server CPU / raw floor',
      numerator: 'oms redis',
      denominator: 'raw redis SET NX PX + Lua del',
      goal: '<= 2',
      of: 'redisUsec',
    },
    {
      name: 'pg advisory: oms throughput / raw pair',
      numerator: 'raw pg try_advisory + unlock',
      denominator: 'oms pg advisory',
      goal: '>= 0.95',
    },
    {
      name: 'pg lease: oms throughput / raw advisory pair',
      numerator: 'raw pg try_advisory + unlock',
      denominator: 'oms pg lease',
      goal: '>= 0.5',
    },
    {
      name: 'redis: fair throughput / default',
      numerator: 'oms redis',
      denominator: 'oms redis fair',
      goal: '>= 0.8',
    },
    {
      name: 'pg lease: fair throughput / default',
      numerator: 'oms pg lease',
      denominator: 'oms pg lease fair',
      goal: '>= 0.7',
    },
    {
      name: 'redis x8: oms throughput / raw floor',
      numerator: 'raw redis x8',
      denominator: 'oms redis x8',
      goal: '>= 0.9',
    },
    {
      name: 'redis x8: oms server CPU / raw floor',
      numerator: 'oms redis x8',
      denominator: 'raw redis x8',
      goal: '<= 2',
      of: 'redisUsec',
    },
    {
      name: 'redis x8: redis-semaphore time / oms',
      numerator: 'redis-semaphore x8',
      denominator: 'oms redis x8',
      goal: '> 1',
    },
    {
      name: 'redis x8: redlock time / oms',
      numerator: 'redlock x8',
      denominator: 'oms redis x8',
      goal: '> 1',
    },
    {
      name: 'pg advisory x8: oms throughput / raw pair',
      numerator: 'raw pg advisory x8',
      denominator: 'oms pg advisory x8',
      goal: '>= 0.9',
    },
    {
      name: 'pg lease x8: oms throughput / raw advisory pair',
      numerator: 'raw pg advisory x8',
      denominator: 'oms pg lease x8',
      goal: '>= 0.5',
    },
  ],
  async teardown(c) {
    await Promise.all([
      c.omsRedis.close(),
      c.omsRedisFair.close(),
      c.advisory.close(),
      c.lease.close(),
      c.leaseFair.close(),
    ]);
    c.redis.disconnect();
    await c.pool.end();
  },
});
