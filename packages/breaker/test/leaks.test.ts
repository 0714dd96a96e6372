import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import {
  bulkhead,
  circuitBreaker,
  constantBackoff,
  pipeline,
  retry,
  retryBudget,
  timeout,
} from '../src/index.js';

// A real gc() (vitest does not pass --expose-gc), so heap figures measure retained memory, not GC timing.
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/**
 * A real-time clock that counts its own pending timers, so the count is exact whatever else the process (the
 * test runner, another test still finishing on a loaded machine) has pending.
 */
function countingClock() {
  const live = new Set<unknown>();
  return {
    live,
    now: Date.now,
    setTimeout(f: () => void, ms: number): unknown {
      const h = setTimeout(() => {
        live.delete(h);
        f();
      }, ms);
      live.add(h);
      return h;
    },
    clearTimeout(h: unknown): void {
      live.delete(h);
      clearTimeout(h as NodeJS.Timeout);
    },
  };
}

describe('no leaks', () => {
  it('1,000,000 executions through pipeline(timeout, retry, circuitBreaker, bulkhead) grow the heap < 20 MB', async () => {
    const p = pipeline(
      timeout(1000),
      retry({ maxAttempts: 2, backoff: constantBackoff(0), budget: retryBudget() }),
      circuitBreaker({
        name: 'leak',
        failureRate: { threshold: 0.9, minimumThroughput: 100, window: { ms: 1000 } },
      }),
      bulkhead({ maxConcurrent: 256, maxQueue: 1000 }),
    );
    const fn = async () => 1;
    const batch = (n: number) => Promise.all(Array.from({ length: n }, () => p.execute(fn)));
    try {
      for (let i = 0; i < 100; i++) await batch(1000); // warm up
      gc();
      const before = process.memoryUsage().heapUsed;
      for (let i = 0; i < 1000; i++) await batch(1000);
      gc();
      await new Promise((r) => setTimeout(r, 10));
      gc();
      const grown = process.memoryUsage().heapUsed - before;
      expect(grown, `heap grew by ${(grown / 1e6).toFixed(1)} MB`).toBeLessThan(20e6);
    } finally {
      await p.close();
    }
    // CPU-bound: about 40 s alone at a load of 36 on 2 cores, over 120 s when other files run beside it. The
    // bound is on memory, so the time budget only has to outlast a loaded machine.
  }, 600_000);

  it('close() leaves no timers or signal listeners behind', async () => {
    const clock = countingClock();
    const t = timeout(60_000, { clock });
    const r = retry({ maxAttempts: 3, backoff: constantBackoff(60_000), clock });
    const b = bulkhead({ maxConcurrent: 1, maxQueue: 10, queueTimeoutMs: 60_000, clock });
    const cb = circuitBreaker({ name: 'c' });
    const p = pipeline(t, r, cb, b);
    const ac = new AbortController();
    let listeners = 0;
    const add = ac.signal.addEventListener.bind(ac.signal);
    const remove = ac.signal.removeEventListener.bind(ac.signal);
    ac.signal.addEventListener = ((...a: Parameters<typeof add>) => {
      listeners++;
      add(...a);
    }) as typeof add;
    ac.signal.removeEventListener = ((...a: Parameters<typeof remove>) => {
      listeners--;
      remove(...a);
    }) as typeof remove;
    const hang = p
      .execute(
        ({ signal }) => new Promise((_, rej) => signal.addEventListener('abort', () => rej(signal.reason))),
        ac.signal,
      )
      .catch(() => {});
    const queued = p.execute(() => 1, ac.signal).catch(() => {});
    const sleeping = r.execute(() => Promise.reject(new Error('x')), ac.signal).catch(() => {});
    await new Promise((r) => setTimeout(r, 5));
    // the shared deadline timer, one retry sleep, one queue timeout
    expect(clock.live.size).toBe(3);
    await p.close();
    await Promise.all([hang, queued, sleeping]);
    expect(clock.live.size).toBe(0);
    expect(listeners).toBe(0);
  });
});
