import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { fakeClock } from '@oms/testkit';
import { describe, expect, it } from 'vitest';
import { gcra, memoryStore, rateLimiter, tokenBucket } from '../src/index.js';
import { memoryStoreSize } from '../src/memory-store.js';

// A real collection before each reading, so the figure is what the store retains, not when GC last ran
// (Vitest does not pass --expose-gc; without it Node 24 measured 98 MB of garbage not yet collected).
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

describe('memoryStore', () => {
  it('1,000,000 distinct keys through maxKeys 10,000 grow the heap by less than 50 MB', async () => {
    const store = memoryStore({ maxKeys: 10_000 });
    const l = rateLimiter({ name: 'm', algorithm: tokenBucket({ capacity: 10, refillPerSec: 1 }), store });
    for (let i = 0; i < 20_000; i++) await l.consume(`warm:${i}`);
    gc();
    const before = process.memoryUsage().heapUsed;
    for (let i = 0; i < 1_000_000; i++) await l.consume(`user:${i}`);
    gc();
    await new Promise((r) => setTimeout(r, 10));
    const growth = process.memoryUsage().heapUsed - before;
    expect(memoryStoreSize(store)).toBe(10_000);
    expect(growth, `heap grew ${(growth / 1e6).toFixed(1)} MB`).toBeLessThan(50e6);
  }, 60_000);

  it('evicts the least recently used key, not one in use', async () => {
    const clock = fakeClock();
    const store = memoryStore({ maxKeys: 3 });
    const l = rateLimiter({ name: 'm', algorithm: gcra({ limit: 1, periodMs: 60_000 }), store, clock });
    await l.consume('a');
    await l.consume('b');
    await l.consume('c');
    await l.consume('a'); // denied, but it marks a as used
    await l.consume('d'); // must evict b, the least recently used
    expect(memoryStoreSize(store)).toBe(3);
    expect((await l.peek('a')).allowed).toBe(false);
    expect((await l.peek('b')).allowed).toBe(true);
  });

  it('expires lazily: an idle key reads as new without any timer', async () => {
    const clock = fakeClock();
    const l = rateLimiter({ name: 'm', algorithm: tokenBucket({ capacity: 2, refillPerSec: 1 }), clock });
    await l.consume('k', { cost: 2 });
    expect(clock.pending()).toBe(0);
    clock.advance(2001);
    expect((await l.consume('k', { cost: 2 })).allowed).toBe(true);
  });

  it('shares state between limiters of the same name on one store, not across names', async () => {
    const store = memoryStore({ maxKeys: 100 });
    const algorithm = gcra({ limit: 2, periodMs: 60_000 });
    const a = rateLimiter({ name: 'same', algorithm, store });
    const b = rateLimiter({ name: 'same', algorithm, store });
    const c = rateLimiter({ name: 'other', algorithm, store });
    await a.consume('k');
    expect((await b.consume('k')).remaining).toBe(0);
    expect((await c.consume('k')).remaining).toBe(1);
  });
});
