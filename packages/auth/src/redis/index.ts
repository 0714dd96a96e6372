import { fail, invalidOption } from '../errors.js';
import type { DpopReplayStore } from '../types.js';

/**
 * The one command the replay store sends. An ioredis `Redis` or `Cluster` fits as is; so does any client with
 * this `set` overload.
 *
 * @example
 * import type { RedisSetNx } from '@oms/auth/redis';
 * declare const redis: RedisSetNx;
 * const fresh = (await redis.set('k', '1', 'PX', 1_000, 'NX')) === 'OK';
 */
export interface RedisSetNx {
  set(key: string, value: string, px: 'PX', ms: number, nx: 'NX'): Promise<'OK' | null>;
}

/**
 * Options of `redisReplayStore`.
 *
 * @example
 * import { type RedisReplayStoreOptions, type RedisSetNx, redisReplayStore } from '@oms/auth/redis';
 * declare const redis: RedisSetNx;
 * const opts: RedisReplayStoreOptions = { redis, prefix: 'api:dpop:' };
 * const store = redisReplayStore(opts);
 */
export interface RedisReplayStoreOptions {
  redis: RedisSetNx;
  /** Prepended to every key. Default `oms:dpop:`. */
  prefix?: string;
}

/**
 * A DPoP replay store shared by every process on one Redis: `SET key 1 PX ttl NX`, so exactly one process accepts a
 * proof id, and Redis expires it on its own clock. A Redis error rejects with
 * `ERR_OMS_AUTH_REPLAY_STORE_UNAVAILABLE` (HTTP 503): a proof is never accepted unchecked.
 *
 * @example
 * import { dpop } from '@oms/auth';
 * import { type RedisSetNx, redisReplayStore } from '@oms/auth/redis';
 * declare const redis: RedisSetNx; // your ioredis Redis or Cluster: new Redis(process.env.REDIS_URL)
 * const proofs = dpop({
 *   replayStore: redisReplayStore({ redis, prefix: 'orders:dpop:' }),
 *   htuFrom: { origin: 'https://api.example.com' },
 * });
 */
export function redisReplayStore(opts: RedisReplayStoreOptions): DpopReplayStore {
  if (typeof opts?.redis?.set !== 'function')
    throw invalidOption('redisReplayStore needs { redis } (an ioredis client)');
  const prefix = opts.prefix ?? 'oms:dpop:';
  if (typeof prefix !== 'string' || prefix.length > 200 || /[{}\s]/.test(prefix)) {
    throw invalidOption(
      `prefix must be at most 200 characters without braces or whitespace (got ${JSON.stringify(prefix)})`,
    );
  }
  const { redis } = opts;
  return {
    async remember(id, ttlMs) {
      let reply: 'OK' | null;
      try {
        reply = await redis.set(`${prefix}${id}`, '1', 'PX', Math.max(1, Math.ceil(ttlMs)), 'NX');
      } catch (e) {
        throw fail(
          'ERR_OMS_AUTH_REPLAY_STORE_UNAVAILABLE',
          'the DPoP replay store (Redis) could not be reached',
          e,
        );
      }
      return reply === 'OK';
    },
  };
}
