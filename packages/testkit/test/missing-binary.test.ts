import { afterEach, describe, expect, it } from 'vitest';
import { startPostgres } from '../src/postgres-server.js';
import { startRedis, startRedisCluster } from '../src/redis-server.js';

const saved = { path: process.env.PATH, root: process.env.OMS_TESTKIT_PG_ROOT };
const hideBinaries = () => {
  process.env.PATH = '/nonexistent-oms-bin';
  process.env.OMS_TESTKIT_PG_ROOT = '/nonexistent-oms-pg';
};

afterEach(() => {
  process.env.PATH = saved.path;
  if (saved.root === undefined) delete process.env.OMS_TESTKIT_PG_ROOT;
  else process.env.OMS_TESTKIT_PG_ROOT = saved.root;
});

describe('a missing server binary', () => {
  it('names redis-server and the package that provides it', async () => {
    hideBinaries();
    await expect(startRedis()).rejects.toMatchObject({
      code: 'ERR_OMS_TESTKIT_MISSING_BINARY',
      message: expect.stringMatching(
        /'redis-server' was not found.*apt-get install redis-server.*OMS_TEST_REDIS_URL/,
      ),
    });
  });

  it('names postgres and the postgresql package, and says where it looked', async () => {
    hideBinaries();
    await expect(startPostgres()).rejects.toMatchObject({
      code: 'ERR_OMS_TESTKIT_MISSING_BINARY',
      message: expect.stringMatching(
        /'postgres' was not found on PATH or under \/usr\/lib\/postgresql\/\*\/bin.*'postgresql'.*OMS_TEST_DATABASE_URL/,
      ),
    });
  });

  it('names redis-cli and redis-tools for a cluster', async () => {
    hideBinaries();
    await expect(startRedisCluster({ masters: 3 })).rejects.toMatchObject({
      message: expect.stringMatching(/'redis-cli' was not found.*'redis-tools'/),
    });
  });
});
