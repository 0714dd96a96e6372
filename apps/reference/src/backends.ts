import { join } from 'node:path';
import type { PGlite } from '@electric-sql/pglite';
import type { BackupSource } from '@oms/backup';
import type { BreakerStore } from '@oms/breaker';
import { type Locks, memoryLocks } from '@oms/locks';
import type { Listen } from '@oms/outbox';
import type { RateLimitStore } from '@oms/ratelimit';
import type { Redis } from 'ioredis';
import { Kysely, PGliteDialect, PostgresDialect } from 'kysely';
import type pg from 'pg';
import type { Logger } from 'pino';
import type { Config } from './config.js';
import type { Database } from './db/schema.js';
import { openPglite, pgliteDir } from './embedded-db.js';

/** Everything that differs between embedded mode and PostgreSQL + Redis, behind one shape. */
export interface Backends {
  readonly db: 'pglite' | 'postgres';
  readonly cache: 'memory' | 'redis';
  readonly kysely: Kysely<Database>;
  readonly pglite: PGlite | undefined;
  readonly pool: pg.Pool | undefined;
  /** The shared Redis client (rate limits, locks, the outbox stream); undefined when embedded. */
  readonly redis: Redis | undefined;
  readonly locks: Locks;
  readonly locksKind: 'memory' | 'redis';
  /** undefined: each limiter keeps its default per-process memory store. */
  readonly rateLimitStore: RateLimitStore | undefined;
  /** undefined: the breaker keeps its state in memory. */
  readonly breakerStore: (BreakerStore & { ready(signal?: AbortSignal): Promise<void> }) | undefined;
  readonly listen: Listen;
  readonly backupSource: BackupSource;
  /** Makes a Redis connection of its own (the stream consumer blocks on one). */
  duplicateRedis(): Redis;
  /** Whether fencing tokens restart with the process (memory locks), see {@link fenceOf}. */
  readonly fenceEpoch: bigint;
  /** One line naming every choice, for the start log. */
  describe(): Record<string, string>;
  close(): Promise<void>;
}

/**
 * A memory lock's fencing token restarts at 1 with the process, while the fence stored in a row survives it
 * (PGlite keeps its data). So in embedded mode a token is offset by the start time: tokens of a later process
 * are always above those of an earlier one. Redis tokens are used as they are.
 */
export const fenceOf = (b: Pick<Backends, 'fenceEpoch'>, token: bigint): bigint => b.fenceEpoch + token;

/** Kysely's PGlite dialect closes the database when it is destroyed: closing it again is not an error. */
const closePglite = (p: PGlite): Promise<void> | undefined => (p.closed ? undefined : p.close());

/**
 * Opens the backends the configuration names. Each mode imports only its own drivers (embedded mode never loads
 * pg or ioredis), and `early` is an embedded database the process entry already started opening.
 */
export async function createBackends(
  config: Config,
  log: Logger,
  early?: Promise<PGlite>,
): Promise<Backends> {
  const closers: (() => Promise<unknown>)[] = [];
  if (early) closers.push(() => early.then(closePglite));
  try {
    return await build(config, log, closers, early);
  } catch (e) {
    for (const c of closers.reverse()) await c().catch(() => {});
    throw e;
  }
}

async function build(
  config: Config,
  log: Logger,
  closers: (() => Promise<unknown>)[],
  early: Promise<PGlite> | undefined,
): Promise<Backends> {
  let kysely: Kysely<Database>;
  let pglite: PGlite | undefined;
  let pool: pg.Pool | undefined;
  let listen: Listen;
  let backupSource: BackupSource;
  if (config.databaseUrl) {
    const url = config.databaseUrl;
    const [{ default: pg }, { pgListen }, { postgresSource }] = await Promise.all([
      import('pg'),
      import('@oms/outbox/postgres'),
      import('@oms/backup/postgres'),
    ]);
    pool = new pg.Pool({ connectionString: url, max: 20 });
    // A server restart makes idle and checked-out clients emit 'error'; unhandled, that kills the process.
    pool.on('error', (e) => log.warn({ err: e.message }, 'postgres pool client error'));
    pool.on('connect', (c) => c.on('error', (e) => log.warn({ err: e.message }, 'postgres client error')));
    const p = pool;
    closers.push(async () => (p.ending || p.ended ? undefined : p.end())); // kysely.destroy() ends it first
    kysely = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
    listen = pgListen(async () => {
      const client = new pg.Client({ connectionString: url });
      client.on('error', (e) => log.warn({ err: e.message }, 'postgres listen session error'));
      await client.connect();
      return client;
    });
    backupSource = postgresSource({ connectionString: url });
  } else {
    const opening = early ?? openPglite(config.dataDir);
    if (!early) closers.push(() => opening.then(closePglite));
    const [p, { pgliteListen }, { pgliteSource }] = await Promise.all([
      opening,
      import('@oms/outbox/pglite'),
      import('@oms/backup/pglite'),
    ]);
    pglite = p;
    kysely = new Kysely<Database>({ dialect: new PGliteDialect({ pglite }) });
    listen = pgliteListen(pglite);
    backupSource = pgliteSource({ db: pglite });
  }

  let redis: Redis | undefined;
  let breakerRedis: Redis | undefined;
  let locks: Locks;
  let rateLimitStore: RateLimitStore | undefined;
  let breakerStore: Backends['breakerStore'];
  const extra: Redis[] = [];
  if (config.redisUrl) {
    const url = config.redisUrl;
    const [{ Redis }, { redisStore }, { redisLocks }, { redisBreakerStore }] = await Promise.all([
      import('ioredis'),
      import('@oms/ratelimit/redis'),
      import('@oms/locks/redis'),
      import('@oms/breaker/redis'),
    ]);
    // a command whose reply was lost in a disconnect is not resent: it could charge a rate limit twice
    const r = new Redis(url, { autoResendUnfulfilledCommands: false, maxRetriesPerRequest: 2 });
    r.on('error', (e) => log.warn({ err: e.message }, 'redis error'));
    redis = r;
    closers.push(() => r.quit().catch(() => r.disconnect()));
    rateLimitStore = redisStore({ redis: r, prefix: `${config.redisPrefix}rl:` });
    locks = redisLocks({ redis: r, prefix: `${config.redisPrefix}locks:` });
    // the breaker store wants commands to fail fast while Redis is away (it then runs locally)
    const br = new Redis(url, { enableOfflineQueue: false, maxRetriesPerRequest: 1 });
    br.on('error', (e) => log.warn({ err: e.message }, 'redis (breaker) error'));
    breakerRedis = br;
    closers.push(() => br.quit().catch(() => br.disconnect()));
    const store = redisBreakerStore({ redis: br, prefix: `${config.redisPrefix}cb:` });
    closers.push(() => store.close());
    breakerStore = store as unknown as Backends['breakerStore'];
    await store.ready(AbortSignal.timeout(2_000)).catch(() => log.warn('breaker store starts in local mode'));
  } else {
    locks = memoryLocks();
  }
  const l = locks;
  closers.push(() => l.close());

  return {
    db: pglite ? 'pglite' : 'postgres',
    cache: redis ? 'redis' : 'memory',
    kysely,
    pglite,
    pool,
    redis,
    locks,
    locksKind: redis ? 'redis' : 'memory',
    rateLimitStore,
    breakerStore,
    listen,
    backupSource,
    fenceEpoch: redis ? 0n : BigInt(Date.now()) << 20n,
    duplicateRedis() {
      if (!redis) throw new Error('no REDIS_URL: nothing to duplicate');
      const d = redis.duplicate({ autoResendUnfulfilledCommands: true, maxRetriesPerRequest: null });
      d.on('error', (e) => log.warn({ err: e.message }, 'redis (consumer) error'));
      extra.push(d);
      return d;
    },
    describe() {
      return {
        database: pglite ? `pglite (${pgliteDir(config.dataDir)})` : 'postgres (DATABASE_URL)',
        rateLimitStore: redis ? 'redis' : 'memory',
        breakerStore: breakerRedis ? 'redis' : 'memory',
        locks: redis ? 'redis' : 'memory',
        outboxListen: pglite ? 'pglite listen()' : 'pg LISTEN',
        outboxPublisher: redis ? `redis streams (${config.redisPrefix}orders)` : 'in-process',
        backupSource: pglite ? 'pgliteSource' : 'postgresSource',
        keys: config.jwksUrl ? 'JWKS_URL' : `local dev keys (${join(config.dataDir, 'keys')})`,
      };
    },
    async close() {
      for (const d of extra) await d.quit().catch(() => d.disconnect());
      await kysely.destroy().catch(() => {});
      for (const c of closers.reverse()) await c().catch((e) => log.warn({ err: String(e) }, 'close failed'));
    },
  };
}
