import { fakeClock } from '@oms/testkit';
import { describe, expect, it } from 'vitest';
import { gcra, rateLimiter, tokenBucket } from '../src/index.js';

// An epoch time in ms where a TAT kept as one absolute float (ulp 2.4e-4 ms) rounded the second of two
// same-instant charges past τ: gcra({ limit: 7, periodMs: 1000, burst: 2 }) admitted 1 of its burst of 2.
const NOW = 1_700_000_000_123;

describe('state kept as a timestamp plus a small remainder', () => {
  it('gcra admits its whole burst at one instant, whatever the emission interval', async () => {
    for (const [limit, periodMs, burst] of [
      [7, 1000, 2],
      [7, 3_600_000, 3],
      [9, 60_000, 20],
      [3, 1000, 3],
    ] as const) {
      const clock = fakeClock(NOW);
      const l = rateLimiter({ name: 'g', algorithm: gcra({ limit, periodMs, burst }), clock });
      const ds = [];
      for (let i = 0; i <= burst; i++) ds.push(await l.consume('k'));
      expect(
        ds.map((d) => d.allowed),
        `gcra limit ${limit}/${periodMs} ms, burst ${burst}`,
      ).toEqual([...Array(burst).fill(true), false]);
      expect(ds[burst]!.retryAfterMs).toBe(Math.ceil(periodMs / limit));
    }
  });

  it('a slow token bucket admits its whole capacity at one instant, and the refilled token when due', async () => {
    const clock = fakeClock(NOW);
    const l = rateLimiter({
      name: 't',
      algorithm: tokenBucket({ capacity: 3, refillPerSec: 7 / 3600 }),
      clock,
    });
    const ds = [];
    for (let i = 0; i < 4; i++) ds.push(await l.consume('k'));
    expect(ds.map((d) => d.allowed)).toEqual([true, true, true, false]);
    clock.advance(ds[3]!.retryAfterMs);
    expect((await l.consume('k')).allowed).toBe(true);
  });
});
