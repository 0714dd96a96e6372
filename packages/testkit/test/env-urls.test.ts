import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import setup from '../src/global-setup.js';
import { type PostgresServer, startPostgres } from '../src/postgres-server.js';
import { type RedisServer, startRedis } from '../src/redis-server.js';
import { usePostgres, useRedis } from '../src/use.js';

// Stand-ins for "existing servers" a user points the tests at.
let pgServer: PostgresServer;
let redisServer: RedisServer;
const saved = { db: process.env.OMS_TEST_DATABASE_URL, redis: process.env.OMS_TEST_REDIS_URL };

beforeAll(async () => {
  [pgServer, redisServer] = await Promise.all([startPostgres(), startRedis()]);
  process.env.OMS_TEST_DATABASE_URL = pgServer.url;
  process.env.OMS_TEST_REDIS_URL = redisServer.url;
});

afterAll(async () => {
  process.env.OMS_TEST_DATABASE_URL = saved.db;
  process.env.OMS_TEST_REDIS_URL = saved.redis;
  if (saved.db === undefined) delete process.env.OMS_TEST_DATABASE_URL;
  if (saved.redis === undefined) delete process.env.OMS_TEST_REDIS_URL;
  await Promise.all([pgServer?.stop(), redisServer?.stop()]);
});

describe('OMS_TEST_* URLs', () => {
  const db = usePostgres();
  const redis = useRedis();

  it('usePostgres() creates its database on the server OMS_TEST_DATABASE_URL names', async () => {
    expect(new URL(db.url).port).toBe(String(pgServer.port));
    await db.pool().query('create table marker (x int)');
    const admin = new pg.Client(pgServer.url);
    await admin.connect();
    const { rows } = await admin.query('select datname from pg_database where datname = $1', [
      new URL(db.url).pathname.slice(1),
    ]);
    await admin.end();
    expect(rows).toHaveLength(1);
  });

  it('useRedis() writes to the server OMS_TEST_REDIS_URL names', async () => {
    expect(redis.url).toBe(redisServer.url);
    await redis.client().set(`${redis.prefix}k`, 'v');
    const direct = new Redis(redisServer.url);
    expect(await direct.get(`${redis.prefix}k`)).toBe('v');
    direct.disconnect();
  });

  it('the global setup starts no server of its own when both URLs are set', async () => {
    const provided: Record<string, unknown> = {};
    const project = { provide: (k: string, v: unknown) => (provided[k] = v) };
    const teardown = await setup(project as never);
    expect(provided.omsTestkit).toEqual({ postgresUrl: pgServer.url, redisUrl: redisServer.url });
    await teardown();
  });

  it('the fault handles refuse to touch a server the file does not own', async () => {
    await expect(redis.kill()).rejects.toMatchObject({ code: 'ERR_OMS_TESTKIT_NOT_OWNED' });
    expect(() => db.pause()).toThrow(/usePostgres\(\{ dedicated: true \}\)/);
  });
});
