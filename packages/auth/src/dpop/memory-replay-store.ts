import { fail } from '../errors.js';
import { type Clock, systemClock } from '../internal/clock.js';
import type { DpopReplayStore } from '../types.js';
import { v } from '../validate.js';

/**
 * Options of `memoryReplayStore`.
 *
 * @example
 * const store = memoryReplayStore({ maxEntries: 10_000 } satisfies MemoryReplayStoreOptions);
 */
export interface MemoryReplayStoreOptions {
  /** The most proof ids kept. Default 100,000. */
  maxEntries?: number;
  clock?: Clock;
}

/**
 * A DPoP replay store for one process. Ids leave once their time is up. When it is full of ids that are all still
 * live, a new proof is refused rather than an old id forgotten: forgetting would let that proof be replayed.
 * Several processes need a shared store: `redisReplayStore` from `@oms/auth/redis`.
 *
 * @example
 * import { dpop, memoryReplayStore } from '@oms/auth';
 * const proofs = dpop({ replayStore: memoryReplayStore(), htuFrom: { origin: 'https://api.example.com' } });
 */
export function memoryReplayStore(opts: MemoryReplayStoreOptions = {}): DpopReplayStore {
  const maxEntries = v.integer('maxEntries', opts.maxEntries ?? 100_000, { min: 1 });
  const clock = v.clock(opts.clock, systemClock);
  // Insertion order is expiry order for one ttl; a sweep from the front stops at the first live id.
  const seen = new Map<string, number>();
  const sweep = (now: number) => {
    for (const [id, until] of seen) {
      if (until > now) break;
      seen.delete(id);
    }
  };
  return {
    async remember(id, ttlMs) {
      const now = clock.now();
      const until = seen.get(id);
      if (until !== undefined && until > now) return false;
      sweep(now);
      if (seen.size >= maxEntries) {
        throw fail(
          'ERR_OMS_AUTH_REPLAY_STORE_UNAVAILABLE',
          `the DPoP replay store is full (${maxEntries} live ids)`,
        );
      }
      seen.delete(id);
      seen.set(id, now + ttlMs);
      return true;
    },
  };
}
