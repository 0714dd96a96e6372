import type { Cluster, Redis } from 'ioredis';

/**
 * The commands the store sends: scripts only. Both `Redis` and `Cluster` from ioredis fit.
 *
 * @example
 * import { Cluster, Redis } from 'ioredis';
 * import type { RedisScriptClient } from '@oms/breaker/redis';
 * const single: RedisScriptClient = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
 * const cluster: RedisScriptClient = new Cluster([{ host: 'redis-0', port: 6379 }]);
 */
export type RedisScriptClient = Pick<Redis | Cluster, 'evalsha' | 'eval'>;

/**
 * A connection in subscriber mode (pub/sub needs one of its own).
 *
 * @example
 * import { Redis } from 'ioredis';
 * import { redisBreakerStore } from '@oms/breaker/redis';
 * const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
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
 * import { Redis } from 'ioredis';
 * import { redisBreakerStore } from '@oms/breaker/redis';
 * redisBreakerStore({
 *   redis: new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'),
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
  subscriber?: RedisSubscriber | undefined;
  /**
   * Trip everyone only when this many instances have tripped within their open period (default 1: any
   * instance's trip opens all). An instance below quorum still opens locally.
   */
  tripQuorum?: number | undefined;
  /** Longest wait for one Redis command before falling back to local mode (default 500). */
  commandTimeoutMs?: number | undefined;
  /** How often to reconcile with Redis and, in local mode, to look for its return (default 1000). */
  syncIntervalMs?: number | undefined;
  /** How long a breaker's shared record outlives its open period (default 1 hour). */
  keyTtlMs?: number | undefined;
}

/**
 * Whether the store currently shares state through Redis.
 *
 * @example
 * declare const store: RedisBreakerStore;
 * if (store.mode === 'local') console.warn('breakers are deciding alone: Redis is unreachable');
 */
export type StoreMode = 'shared' | 'local';

/**
 * The events of a Redis breaker store.
 *
 * @example
 * declare const store: RedisBreakerStore;
 * store.on('modeChange', (e) => console.warn(`breaker store: ${e.mode}`));
 * store.on('resync', (e) => console.info(`breaker ${e.name} resynced with Redis: ${e.action}`));
 */
export interface RedisBreakerStoreEvents {
  /** Redis became unreachable (`local`: every breaker decides alone) or came back (`shared`, after a resync). */
  modeChange: { mode: StoreMode; error?: unknown };
  /** The store reconciled a breaker with Redis and changed it. */
  resync: { name: string; action: 'opened' | 'closed' | 'pushed-open' };
}
