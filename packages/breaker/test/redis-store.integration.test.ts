import { fileURLToPath } from 'node:url';
import { fakeClock, forkWorkers, spawnWorkers, useRedis } from '@oms/testkit';
import { describe, expect, it } from 'vitest';
import { circuitBreaker } from '../src/index.js';
import { redisBreakerStore } from '../src/redis/index.js';
import type { Input } from './fixtures/shared-worker.js';

const worker = fileURLToPath(new URL('./fixtures/shared-worker.ts', import.meta.url));

describe('redisBreakerStore across 3 real processes', () => {
  const redis = useRedis();

  it('a trip in one process makes the others reject within 300 ms, and exactly one probe runs', async () => {
    const results = await forkWorkers<
      Input,
      { tripAt: number; rejectAt: number; probes: number; state: string; unexpected: string[] }
    >(
      3,
      worker,
      { url: redis.url, prefix: `${redis.prefix}a:`, scenario: 'trip-and-probe' },
      { timeoutMs: 60_000 },
    );
    const [w0, w1, w2] = results;
    expect(w0!.unexpected.concat(w1!.unexpected, w2!.unexpected)).toEqual([]);
    for (const w of [w1!, w2!]) {
      const latency = w.rejectAt - w0!.tripAt;
      expect(latency, `rejected ${latency} ms after the trip`).toBeLessThanOrEqual(300);
    }
    expect(results.map((r) => r.probes).reduce((a, b) => a + b, 0)).toBe(1);
    expect(results.map((r) => r.state)).toEqual(['closed', 'closed', 'closed']);
  }, 90_000);

  it('quorum mode: one failing instance does not open the others; two do', async () => {
    const group = spawnWorkers<
      Input,
      { seen: string[]; tripAt: number; rejectAt: number; unexpected: string[] }
    >(3, worker, { url: redis.url, prefix: `${redis.prefix}q:`, scenario: 'quorum' }, { timeoutMs: 60_000 });
    group.on('message', (i, m) => {
      if (i === 0 && m === 'tripped') {
        // Give a trip every chance to propagate before looking.
        setTimeout(() => {
          for (const k of [0, 1, 2]) group.send(k, 'phase2');
        }, 500);
      }
      if (i === 2 && m === 'checked') group.send(1, 'phase3');
    });
    const outcomes = await group.outcomes;
    const values = outcomes.map((o) => {
      if (!o.ok) throw o.error;
      return o.value;
    });
    expect(values.flatMap((v) => v.unexpected)).toEqual([]);
    expect(values[0]!.seen).toEqual(['open']);
    expect(values[1]!.seen).toEqual(['closed', 'ok']);
    expect(values[2]!.seen).toEqual(['closed', 'ok']);
    const latency = values[2]!.rejectAt - values[1]!.tripAt;
    expect(latency, `quorum trip reached instance 2 after ${latency} ms`).toBeLessThanOrEqual(300);
  }, 90_000);

  it('the closed-state hot path sends nothing to Redis', async () => {
    const client = redis.client();
    let commands = 0;
    const counting = new Proxy(client, {
      get(target, prop, recv) {
        const v = Reflect.get(target, prop, recv);
        if (prop === 'evalsha' || prop === 'eval') {
          return (...a: unknown[]) => {
            commands++;
            return (v as (...x: unknown[]) => unknown).apply(target, a);
          };
        }
        return typeof v === 'function' ? v.bind(target) : v;
      },
    });
    const store = redisBreakerStore({ redis: counting, prefix: `${redis.prefix}h:`, syncIntervalMs: 60_000 });
    await store.ready();
    const b = circuitBreaker({ name: 'hot', store });
    await new Promise((r) => setTimeout(r, 100)); // the attach-time sync
    const before = commands;
    for (let i = 0; i < 1000; i++) await b.execute(() => i);
    expect(commands - before).toBe(0);
    await b.close();
    await store.close();
  });

  it('rejects bad options with a typed error', () => {
    expect(() => redisBreakerStore({ redis: {} as never, prefix: 'x' })).toThrow(/evalsha/);
    expect(() => redisBreakerStore({ redis: redis.client(), prefix: 'x', tripQuorum: 0 })).toThrow(
      /tripQuorum/,
    );
    void fakeClock;
  });
});

describe('redisBreakerStore through a Redis outage (3 processes)', () => {
  const redis = useRedis({ dedicated: true });

  it('kill() leaves all three working locally with no error thrown to callers; restart() resyncs', async () => {
    const group = spawnWorkers<
      Input,
      {
        outcomes: string[];
        localOpen: string;
        recovered: string;
        modes: string[];
        finalMode: string;
        tripAt: number;
        rejectAt: number;
        unexpected: string[];
      }
    >(3, worker, { url: redis.url, prefix: `${redis.prefix}o:`, scenario: 'outage' }, { timeoutMs: 90_000 });
    const counts = new Map<string, number>();
    const all = (m: string) => {
      counts.set(m, (counts.get(m) ?? 0) + 1);
      return counts.get(m) === 3;
    };
    group.on('message', (_i, m) => {
      if (typeof m !== 'string' || !all(m)) return;
      if (m === 'ready') {
        void redis.kill().then(() => {
          for (const k of [0, 1, 2]) group.send(k, 'killed');
        });
      } else if (m === 'local-done') {
        void redis.restart().then(() => {
          for (const k of [0, 1, 2]) group.send(k, 'restarted');
        });
      } else if (m === 'shared') {
        for (const k of [0, 1, 2]) group.send(k, 'trip');
      }
    });
    const outcomes = await group.outcomes;
    const values = outcomes.map((o) => {
      if (!o.ok) throw o.error;
      return o.value;
    });
    for (const v of values) {
      expect(v.unexpected).toEqual([]);
      expect(v.outcomes).toEqual(['failed', 'failed', 'failed', 'rejected']);
      expect(v.localOpen).toBe('open');
      expect(v.recovered).toBe('closed');
      expect(v.modes).toEqual(['local', 'shared']);
      expect(v.finalMode).toBe('shared');
    }
    for (const v of values.slice(1)) {
      const latency = v.rejectAt - values[0]!.tripAt;
      expect(
        latency,
        `after resync, a trip reached another instance in ${latency} ms (${JSON.stringify(values.map((x) => x.modes))})`,
      ).toBeLessThanOrEqual(300);
    }
  }, 120_000);
});
