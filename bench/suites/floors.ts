import { Redis } from 'ioredis';
import pg from 'pg';
import { defineSuite } from '../src/harness.js';

// The raw limits later suites compare against: what one round trip costs before any library logic.
const inFlight =
  <T>(n: number, fn: () => Promise<T>) =>
  () =>
    Promise.all(Array.from({ length: n }, fn));

export default defineSuite({
  name: 'floors',
  async setup(env) {
    const redis = new Redis(env.redisUrl);
    const sha = (await redis.script('LOAD', 'return 1')) as string;
    const one = new pg.Pool({ connectionString: env.postgresUrl, max: 1 });
    const eight = new pg.Pool({ connectionString: env.postgresUrl, max: 8 });
    // open every connection before measuring, so connects are not timed
    await Promise.all([one.query('select 1'), ...Array.from({ length: 8 }, () => eight.query('select 1'))]);
    return { redis, sha, one, eight };
  },
  cases: ({ redis, sha, one, eight }) => [
    { name: 'redis PING x1', redis: true, fn: () => redis.ping() },
    { name: 'redis PING x64', ops: 64, redis: true, fn: inFlight(64, () => redis.ping()) },
    { name: 'redis EVALSHA x1', redis: true, fn: () => redis.evalsha(sha, 0) },
    { name: 'redis EVALSHA x64', ops: 64, redis: true, fn: inFlight(64, () => redis.evalsha(sha, 0)) },
    { name: 'pg SELECT 1 (1 conn)', fn: () => one.query('select 1') },
    { name: 'pg SELECT 1 (8 conns)', ops: 8, fn: inFlight(8, () => eight.query('select 1')) },
  ],
  ratios: [
    { name: 'PING: 64 in flight vs 1 (time/op)', numerator: 'redis PING x64', denominator: 'redis PING x1' },
    { name: 'EVALSHA vs PING, 64 in flight', numerator: 'redis EVALSHA x64', denominator: 'redis PING x64' },
    {
      name: 'EVALSHA vs PING, 64 in flight (Redis CPU/op)',
      numerator: 'redis EVALSHA x64',
      denominator: 'redis PING x64',
      of: 'redisUsec',
    },
    {
      name: 'pg: 8 conns vs 1 (time/op)',
      numerator: 'pg SELECT 1 (8 conns)',
      denominator: 'pg SELECT 1 (1 conn)',
    },
  ],
  async teardown({ redis, one, eight }) {
    redis.disconnect();
    await Promise.all([one.end(), eight.end()]);
  },
});
