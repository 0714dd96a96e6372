import { randomBytes } from 'node:crypto';
import { Cluster, type ClusterOptions, Redis, type RedisOptions } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, inject } from 'vitest';
import { TestkitError } from './errors.js';
import { type PostgresServer, startPostgres } from './postgres-server.js';
import { type RedisClusterServer, type RedisServer, startRedis, startRedisCluster } from './redis-server.js';
import type { FaultHandle } from './types.js';

const uid = () => randomBytes(4).toString('hex');

function notOwned(what: string, fix: string): never {
  throw new TestkitError(
    'ERR_OMS_TESTKIT_NOT_OWNED',
    `${what} needs a server this test file owns; the shared server is used by other files. Call ${fix}.`,
  );
}

function notReady(what: string): never {
  throw new TestkitError(
    'ERR_OMS_TESTKIT_NOT_READY',
    `${what} is available from beforeAll on, not at import time`,
  );
}

function faults(server: FaultHandle | undefined, fix: string): FaultHandle {
  return {
    kill: () => (server ? server.kill() : notOwned('kill()', fix)),
    restart: () => (server ? server.restart() : notOwned('restart()', fix)),
    pause: () => (server ? server.pause() : notOwned('pause()', fix)),
    resume: () => (server ? server.resume() : notOwned('resume()', fix)),
  };
}

/** A database of this test file's own, on the shared server or on one it owns. */
export interface PostgresHandle extends FaultHandle {
  /** Connection string for this file's database (or schema). */
  readonly url: string;
  /** True when the file owns the server, so the fault handles work. */
  readonly owned: boolean;
  /** A pg Pool on this file's database, ended after the file. */
  pool(config?: pg.PoolConfig): pg.Pool;
}

/**
 * Gives the test file its own PostgreSQL database: on the run's shared server (or `OMS_TEST_DATABASE_URL`),
 * or with `{ dedicated: true }` on a throwaway server the file owns, so it can `kill()`, `restart()`,
 * `pause()` and `resume()` it. Where the URL's role may not create databases, a schema is used instead.
 *
 * @example
 * const db = usePostgres();
 * it('stores rows', async () => { await db.pool().query('create table t (x int)'); });
 */
export function usePostgres(opts: { dedicated?: boolean } = {}): PostgresHandle {
  let server: PostgresServer | undefined;
  let url: string | undefined;
  let cleanup: (() => Promise<void>) | undefined;
  const pools: pg.Pool[] = [];
  const fix = 'usePostgres({ dedicated: true })';

  beforeAll(async () => {
    let adminUrl: string;
    if (opts.dedicated) {
      server = await startPostgres();
      adminUrl = server.url;
    } else {
      const shared = process.env.OMS_TEST_DATABASE_URL ?? inject('omsTestkit')?.postgresUrl;
      if (!shared) notReady('usePostgres(): no shared server (is the testkit global setup configured?)');
      adminUrl = shared;
    }
    const name = `oms_t_${uid()}`;
    const admin = new pg.Client({ connectionString: adminUrl });
    await admin.connect();
    try {
      await admin.query(`create database ${name}`);
      const u = new URL(adminUrl);
      u.pathname = `/${name}`;
      url = u.toString();
      cleanup = async () => {
        const c = new pg.Client({ connectionString: adminUrl });
        await c.connect();
        await c.query(`drop database if exists ${name} with (force)`).finally(() => c.end());
      };
    } catch (e) {
      if ((e as { code?: string }).code !== '42501') throw e;
      // No CREATEDB right: fall back to a schema of our own in the given database.
      await admin.query(`create schema ${name}`);
      const u = new URL(adminUrl);
      u.searchParams.set('options', `-c search_path=${name}`);
      url = u.toString();
      cleanup = async () => {
        const c = new pg.Client({ connectionString: adminUrl });
        await c.connect();
        await c.query(`drop schema if exists ${name} cascade`).finally(() => c.end());
      };
    } finally {
      await admin.end();
    }
  });

  afterAll(async () => {
    await Promise.all(pools.splice(0).map((p) => p.end().catch(() => {})));
    if (server) {
      await server.stop();
    } else {
      await cleanup?.();
    }
  });

  return {
    get url() {
      return url ?? notReady('usePostgres().url');
    },
    get owned() {
      return server !== undefined;
    },
    pool(config = {}) {
      const p = new pg.Pool({ connectionString: url ?? notReady('usePostgres().pool()'), ...config });
      // a killed server makes idle clients emit errors; the test asserts on queries, not on these
      p.on('error', () => {});
      pools.push(p);
      return p;
    },
    ...faultsLazy(() => server, fix),
  };
}

/** Binds fault handles to a server that only exists after beforeAll. */
function faultsLazy(get: () => FaultHandle | undefined, fix: string): FaultHandle {
  return {
    kill: async () => faults(get(), fix).kill(),
    restart: async () => faults(get(), fix).restart(),
    pause: () => faults(get(), fix).pause(),
    resume: () => faults(get(), fix).resume(),
  };
}

/** A key prefix of this test file's own, on the shared Redis or on one it owns. */
export interface RedisHandle extends FaultHandle {
  readonly url: string;
  /** A unique prefix such as `t:1a2b3c4d:`; every key the file writes must start with it. */
  readonly prefix: string;
  readonly owned: boolean;
  /** An ioredis client, disconnected after the file. */
  client(opts?: RedisOptions): Redis;
}

/**
 * Gives the test file a Redis and a unique key prefix (keys under it are deleted after the file). With
 * `{ dedicated: true }` the file owns a throwaway server and can inject faults.
 *
 * @example
 * const redis = useRedis({ dedicated: true });
 * it('survives a restart', async () => { await redis.kill(); await redis.restart(); });
 */
export function useRedis(opts: { dedicated?: boolean } = {}): RedisHandle {
  let server: RedisServer | undefined;
  let url: string | undefined;
  const prefix = `t:${uid()}:`;
  const clients: Redis[] = [];

  beforeAll(async () => {
    if (opts.dedicated) {
      server = await startRedis();
      url = server.url;
    } else {
      url = process.env.OMS_TEST_REDIS_URL ?? inject('omsTestkit')?.redisUrl;
      if (!url) notReady('useRedis(): no shared server (is the testkit global setup configured?)');
    }
  });

  afterAll(async () => {
    for (const c of clients.splice(0)) c.disconnect();
    if (server) {
      await server.stop();
    } else if (url) {
      const c = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
      try {
        await c.connect();
        let cursor = '0';
        do {
          const [next, keys] = await c.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
          cursor = next;
          if (keys.length) await c.unlink(...keys);
        } while (cursor !== '0');
      } finally {
        c.disconnect();
      }
    }
  });

  return {
    get url() {
      return url ?? notReady('useRedis().url');
    },
    prefix,
    get owned() {
      return server !== undefined;
    },
    client(o = {}) {
      const c = new Redis(url ?? notReady('useRedis().client()'), o);
      c.on('error', () => {});
      clients.push(c);
      return c;
    },
    ...faultsLazy(() => server, 'useRedis({ dedicated: true })'),
  };
}

/** A Redis Cluster this test file owns. */
export interface RedisClusterHandle extends FaultHandle {
  readonly startupNodes: readonly { host: string; port: number }[];
  /** Fault handles per master. */
  readonly nodes: readonly FaultHandle[];
  readonly prefix: string;
  /** An ioredis Cluster client, disconnected after the file. */
  client(opts?: ClusterOptions): Cluster;
}

/**
 * Starts a Redis Cluster of `masters` masters (no replicas) for this test file, with fault handles for the
 * whole cluster and for each node.
 *
 * @example
 * const cluster = useRedisCluster({ masters: 3 });
 * it('serves tagged keys', async () => { await cluster.client().set('{u1}:a', '1'); });
 */
export function useRedisCluster(opts: { masters?: number } = {}): RedisClusterHandle {
  let server: RedisClusterServer | undefined;
  const clients: Cluster[] = [];
  beforeAll(async () => {
    server = await startRedisCluster({ masters: opts.masters ?? 3 });
  });
  afterAll(async () => {
    for (const c of clients.splice(0)) c.disconnect();
    await server?.stop();
  });
  const fix = 'useRedisCluster()';
  return {
    get startupNodes() {
      return server?.startupNodes ?? notReady('useRedisCluster().startupNodes');
    },
    get nodes() {
      return (server ?? notReady('useRedisCluster().nodes')).nodes;
    },
    prefix: `t:${uid()}:`,
    client(o = {}) {
      const c = new Cluster([...(server ?? notReady('useRedisCluster().client()')).startupNodes], o);
      c.on('error', () => {});
      clients.push(c);
      return c;
    },
    ...faultsLazy(() => server, fix),
  };
}
