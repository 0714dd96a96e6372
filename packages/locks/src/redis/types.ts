import type { Cluster, Redis } from 'ioredis';
import type { LocksOptions } from '../types.js';

/**
 * What the lock scripts need of a client: `Redis` and `Cluster` from ioredis both fit.
 *
 * @example
 * import { Cluster, Redis } from 'ioredis';
 * import type { RedisLike } from '@oms/locks/redis';
 * const single: RedisLike = new Redis();
 * const cluster: RedisLike = new Cluster([{ host: '127.0.0.1', port: 7000 }]);
 */
export type RedisLike = Pick<Redis | Cluster, 'evalsha' | 'eval'> & {
  /** Used to open the subscriber connection for wake-ups when `subscriber` is not given. */
  duplicate?: () => RedisSubscriberLike;
};

/**
 * A connection in subscriber mode for release wake-ups.
 *
 * @example
 * import { Redis } from 'ioredis';
 * import type { RedisSubscriberLike } from '@oms/locks/redis';
 * const subscriber: RedisSubscriberLike = new Redis();
 */
export type RedisSubscriberLike = Pick<
  Redis | Cluster,
  'subscribe' | 'unsubscribe' | 'on' | 'removeListener'
> & {
  quit?: () => Promise<unknown>;
};

/**
 * Options of `redisLocks`.
 *
 * @example
 * import { Redis } from 'ioredis';
 * import { type RedisLocksOptions, redisLocks } from '@oms/locks/redis';
 * const opts: RedisLocksOptions = { redis: new Redis(), prefix: 'orders:locks:', fair: true };
 * const locks = redisLocks(opts);
 */
export interface RedisLocksOptions extends LocksOptions {
  /** An ioredis `Redis` or `Cluster`. */
  redis: RedisLike;
  /** Key prefix, also names the wake-up channel. Default `oms:locks:`. No braces or whitespace. */
  prefix?: string;
  /**
   * A connection for wake-up notifications (it enters subscriber mode). Default: `redis.duplicate()`,
   * opened on the first waiting `acquire` and closed by `close()`.
   */
  subscriber?: RedisSubscriberLike;
}
