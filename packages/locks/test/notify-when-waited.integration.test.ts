import { setTimeout as sleep } from 'node:timers/promises';
import { until, usePostgres, useRedis } from '@oms/testkit';
import { describe, expect, it } from 'vitest';
import type { Locks } from '../src/index.js';
import { postgresLocks } from '../src/postgres/index.js';
import { redisLocks } from '../src/redis/index.js';

// A release nobody waits for must not publish (on PostgreSQL a NOTIFY costs a transaction id and a global
// queue lock); a release a waiter is blocked on must, or the waiter would sleep until the fallback poll.
const redis = useRedis();
const db = usePostgres();

/**
 * Holds `key`, starts a waiter and releases once the waiter says it waits, up to three rounds, until a wake-up
 * is seen. The waiter marks the key in its failed try, or just after it through the LISTEN session, so on a
 * loaded machine a release can still land before the mark; the waiter then takes the free lock with no wake-up,
 * which is correct. A release that never wakes a marked waiter fails every round.
 */
async function releaseToWaiter(
  holder: Locks,
  waiterLocks: Locks,
  key: string,
  delivered: () => Promise<boolean>,
): Promise<void> {
  for (let round = 0; round < 3; round++) {
    const held = await holder.acquire(key);
    let waits = false;
    const off = waiterLocks.on('waiting', () => {
      waits = true;
    });
    const waiter = waiterLocks.acquire(key, { waitMs: 15_000 });
    await until(() => waits, { timeoutMs: 10_000, what: 'the waiter to find the key taken' });
    off();
    await sleep(100 * (round + 1));
    const t0 = Date.now();
    await held.release();
    await (await waiter).release();
    // woken well before the fallback poll (20 s here), so by the notification or by a free lock
    expect(Date.now() - t0).toBeLessThan(5_000);
    if (await delivered()) return;
  }
  throw new Error(`no wake-up was published for '${key}' in three releases to a waiting acquire`);
}

describe('release wake-ups go out only when someone waits', () => {
  it('on Redis', async () => {
    const sub = redis.client();
    const seen: string[] = [];
    sub.on('message', (_c: string, m: string) => seen.push(m));
    await sub.subscribe(`${redis.prefix}wake`);
    const a = redisLocks({ redis: redis.client(), prefix: redis.prefix, pollMs: 20_000 });
    const waiterStore = redisLocks({ redis: redis.client(), prefix: redis.prefix, pollMs: 20_000 });
    try {
      for (let i = 0; i < 5; i++) await (await a.acquire('quiet')).release();
      await (await a.acquire('quiet', { mode: 'shared' })).release();
      // a PING on the subscriber's connection comes back after any message published before it
      await sub.ping();
      expect(seen).toEqual([]);
      await releaseToWaiter(a, waiterStore, 'busy', async () => {
        await sub.ping();
        return seen.length >= 1;
      });
      expect(seen[0]).toBe('busy');
    } finally {
      await Promise.all([a.close(), waiterStore.close()]);
    }
  });

  for (const strategy of ['advisory', 'lease'] as const) {
    it(`on PostgreSQL (${strategy})`, async () => {
      const listen = await db.pool({ max: 1 }).connect();
      const seen: string[] = [];
      listen.on('notification', (m) => seen.push(m.payload ?? ''));
      await listen.query('listen oms_locks');
      const pool = db.pool({ max: 6 });
      const a = postgresLocks({ pool, strategy, namespace: strategy, pollMs: 20_000 });
      const w = postgresLocks({ pool: db.pool({ max: 4 }), strategy, namespace: strategy, pollMs: 20_000 });
      try {
        await a.migrate();
        for (let i = 0; i < 5; i++) await (await a.acquire('quiet')).release();
        await (await a.acquire('quiet', { mode: 'shared' })).release();
        // a NOTIFY committed before this round trip is delivered before its reply
        await listen.query('select 1');
        expect(seen).toEqual([]);
        await releaseToWaiter(a, w, 'busy', async () => {
          await listen.query('select 1');
          return seen.length >= 1;
        });
        expect(seen[0]).toBe(`${strategy.length}:${strategy}busy`);
      } finally {
        await Promise.all([a.close(), w.close()]);
        listen.release(true);
      }
    });
  }
});
