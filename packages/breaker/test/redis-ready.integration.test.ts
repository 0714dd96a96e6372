import { until, useRedis } from '@oms/testkit';
import { describe, expect, it } from 'vitest';
import { circuitBreaker } from '../src/index.js';
import { redisBreakerStore } from '../src/redis/index.js';
import { READ, sha1 } from '../src/redis/scripts.js';

const boom = () => {
  throw new Error('boom');
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('redisBreakerStore on clients with enableOfflineQueue: false (the README tip)', () => {
  const redis = useRedis();

  it('ready() means shared state is live, and a trip right after start opens the other instance with no probe-less close', async () => {
    for (let run = 0; run < 3; run++) {
      const prefix = `${redis.prefix}r${run}:`;
      const instance = () => {
        // A reply slower than commandTimeoutMs is an outage by design; on a loaded machine the default 500 ms can
        // pass during these runs, and that is not what this test is about (a connection still coming up).
        const store = redisBreakerStore({
          redis: redis.client({ enableOfflineQueue: false }),
          prefix,
          commandTimeoutMs: 5_000,
        });
        const modes: string[] = [];
        store.on('modeChange', (e) => modes.push(e.mode));
        return { store, modes };
      };
      const a = instance();
      const b = instance();
      await Promise.all([a.store.ready(), b.store.ready()]);
      // A connection still being established is not an outage: no detour through local mode.
      expect([a.store.mode, b.store.mode], `run ${run}`).toEqual(['shared', 'shared']);
      expect(a.modes.concat(b.modes), `run ${run}`).toEqual([]);

      const opts = { name: 'dep', consecutiveFailures: 1, openMs: 5_000 };
      const ba = circuitBreaker({ ...opts, store: a.store });
      const bb = circuitBreaker({ ...opts, store: b.store });
      const seen: string[] = [];
      bb.on('stateChange', (e) => seen.push(`${e.to}:${e.reason}`));
      await ba.execute(boom).catch(() => {}); // right after start, racing B's attach-time sync
      await until(() => bb.state === 'open', { timeoutMs: 5_000, what: `run ${run}: the trip to reach B` });
      // A stays open for 5 s; watch B for a second: a remote close without a probe must never follow.
      for (const end = Date.now() + 1_000; Date.now() < end; ) {
        await sleep(20);
        await b.store.sync(); // also reconciles on demand: it must agree with the push
      }
      expect(seen, `run ${run}`).toEqual(['open:remote-open']);
      expect(bb.state).toBe('open');
      await Promise.all([ba.close(), bb.close()]);
      await Promise.all([a.store.close(), b.store.close()]);
    }
  }, 60_000);

  it('a reconcile read that raced a pushed open is discarded: B never closes without a probe', async () => {
    // The read runs in Redis before A's trip, but its reply reaches B after the push (a slow reply path),
    // so it says "closed" about a breaker that is open. Acting on it would close B with no probe.
    const prefix = `${redis.prefix}race:`;
    const client = redis.client();
    let holdReads = false;
    const isRead = (a: unknown[]) => a[0] === sha1(READ) || a[0] === READ;
    const slowReplies = new Proxy(client, {
      get(target, prop, recv) {
        const v = Reflect.get(target, prop, recv);
        if (prop === 'evalsha' || prop === 'eval') {
          return async (...a: unknown[]) => {
            const r = await (v as (...x: unknown[]) => Promise<unknown>).apply(target, a);
            if (holdReads && isRead(a)) await sleep(300);
            return r;
          };
        }
        return typeof v === 'function' ? v.bind(target) : v;
      },
    });
    const a = redisBreakerStore({ redis: redis.client(), prefix, syncIntervalMs: 60_000 });
    const b = redisBreakerStore({ redis: slowReplies, prefix, syncIntervalMs: 60_000 });
    await Promise.all([a.ready(), b.ready()]);
    const opts = { name: 'dep', consecutiveFailures: 1, openMs: 5_000 };
    const ba = circuitBreaker({ ...opts, store: a });
    const bb = circuitBreaker({ ...opts, store: b });
    const seen: string[] = [];
    bb.on('stateChange', (e) => seen.push(`${e.to}:${e.reason}`));
    await Promise.all([a.sync(), b.sync()]); // the attach-time reads are done

    holdReads = true;
    const reconcile = b.sync(); // READ runs now and sees closed; its reply is held back
    await sleep(50);
    await ba.execute(boom).catch(() => {});
    await until(() => bb.state === 'open', { timeoutMs: 5_000, what: 'the pushed trip to reach B' });
    await reconcile;
    holdReads = false;
    expect(seen).toEqual(['open:remote-open']);
    expect(bb.state).toBe('open');
    // The next reconcile reads the open record and agrees.
    await b.sync();
    expect(seen).toEqual(['open:remote-open']);
    await Promise.all([ba.close(), bb.close(), a.close(), b.close()]);
  }, 30_000);
});
