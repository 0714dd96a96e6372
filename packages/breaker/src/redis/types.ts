import type { Cluster, Redis } from 'ioredis';

/**
 * The commands the store sends: scripts only. Both `Redis` and `Cluster` from ioredis fit.
 *
 * @example
 * import Redis, { Cluster } from 'ioredis';
 * const single: RedisScriptClient = new Redis(process.env.REDIS_URL);
 * const cluster: RedisScriptClient = new Cluster([{ host: 'redis-0', port: 6379 }]);
 */
export type RedisScriptClient = Pick<Redis | Cluster, 'evalsha' | 'eval'>;

/**
 * A connection in subscriber mode (pub/sub needs one of its own).
 *
 * @example
 * const redis = new Redis(process.env.REDIS_URL);
 * redisBreakerStore({ redis, prefix: 'svc:cb:', subscriber: redis.duplicate() });
 */
export type RedisSubscriber = Pick<
  Redis | Cluster,
  'subscribe' | 'unsubscribe' | 'on' | 'removeListener' | 'quit'
>;

/**
 * Options of `redisBreakerStore()`.
 *
 * @example
 * redisBreakerStore({
 *   redis: new Redis(process.env.REDIS_URL),
 *   prefix: 'orders:cb:',
 *   tripQuorum: 2,
 *   commandTimeoutMs: 250,
 * });
 */
export interface RedisBreakerStoreOptions {
  /** Runs the scripts. If `subscriber` is not given it must also have `duplicate()`. */
  redis: RedisScriptClient & Partial<Pick<Redis | Cluster, 'duplicate'>>;
  /** Key and channel prefix, for example `'svc:breaker:'`. */
  prefix: string;
  /** A dedicated connection for pub/sub. Default: `redis.duplicate()`, closed by `close()`. */
  subscriber?: RedisSubscriber;
  /**
   * Trip everyone only when this many instances have tripped within their open period (default 1: any
   * instance's trip opens all). An instance below quorum still opens locally.
   */
  tripQuorum?: number;
  /** Longest wait for one Redis command before falling back to local mode (default 500). */
  commandTimeoutMs?: number;
  /** How often to reconcile with Redis and, in local mode, to look for its return (default 1000). */
  syncIntervalMs?: number;
  /** How long a breaker's shared record outlives its open period (default 1 hour). */
  keyTtlMs?: number;
}

/**
 * Whether the store currently shares state through Redis.
 *
 * @example
 * if (store.mode === 'local') log.warn('breakers are deciding alone: Redis is unreachable');
 */
export type StoreMode = 'shared' | 'local';

/**
 * The events of a Redis breaker store.
 *
 * @example
 * store.on('modeChange', (e) => log.warn({ mode: e.mode }, 'breaker store'));
 * store.on('resync', (e) => log.info(e, 'breaker resynced with Redis'));
 */
export interface RedisBreakerStoreEvents {
  /** Redis became unreachable (`local`: every breaker decides alone) or came back (`shared`, after a resync). */
  modeChange: { mode: StoreMode; error?: unknown };
  /** The store reconciled a breaker with Redis and changed it. */
  resync: { name: string; action: 'opened' | 'closed' | 'pushed-open' };
}
