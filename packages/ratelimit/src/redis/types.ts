import type { Cluster, Redis } from 'ioredis';

/**
 * The smallest part of an ioredis `Redis` or `Cluster` the store needs.
 *
 * @example
 * import { Cluster } from 'ioredis';
 * import type { RedisLike } from '@oms/ratelimit/redis';
 * const redis: RedisLike = new Cluster([{ host: '127.0.0.1', port: 7000 }]);
 */
export type RedisLike = Pick<Redis | Cluster, 'evalsha' | 'eval' | 'script' | 'del' | 'status'>;

/**
 * Options of `redisStore`.
 *
 * @example
 * import type { Redis } from 'ioredis';
 * import { type RedisStoreOptions, redisStore } from '@oms/ratelimit/redis';
 * declare const redis: Redis;
 * // keys like 'tenant-7:user-1' of every limiter share the tenant's slot, so limitAll is one script on Cluster
 * const o: RedisStoreOptions = { redis, prefix: 'rl:', hashTag: (_name, key) => key.split(':')[0] ?? key };
 * const store = redisStore(o);
 */
export interface RedisStoreOptions {
  /** An ioredis `Redis` or `Cluster`, created and closed by you. */
  redis: RedisLike;
  /** Prepended to every key, e.g. `rl:`. No `{` or `}` (they would change the hash slot). */
  prefix?: string;
  /**
   * Chooses the cluster hash tag of a key. Default: `${name}:${key}`, which spreads keys over the cluster.
   * Return the same tag for keys that `limitAll` checks together (a tenant id, or a constant) to make
   * `limitAll` one script and one round trip on Cluster too.
   */
  hashTag?: (name: string, key: string) => string;
}
