import { fakeClock } from '@oms/testkit';
import { describe, expect, it } from 'vitest';
import { fixedWindow, gcra, rateLimiter, slidingWindow, tokenBucket } from '../src/index.js';

const T0 = 1_700_000_000_000; // a multiple of 1000, so windows start at T0

function make(algorithm: Parameters<typeof rateLimiter>[0]['algorithm']) {
  const clock = fakeClock(T0);
  return { clock, limiter: rateLimiter({ name: 'test', algorithm, clock }) };
}

async function drain(l: ReturnType<typeof rateLimiter>, key: string, n: number) {
  let admitted = 0;
  for (let i = 0; i < n; i++) if ((await l.consume(key)).allowed) admitted++;
  return admitted;
}

describe('tokenBucket', () => {
  it('admits capacity at once, then refills refillPerSec continuously', async () => {
    const { clock, limiter } = make(tokenBucket({ capacity: 5, refillPerSec: 2 }));
    expect(await drain(limiter, 'k', 10)).toBe(5);
    const denied = await limiter.consume('k');
    expect(denied).toMatchObject({ allowed: false, remaining: 0, retryAfterMs: 500, limit: 5 });
    clock.advance(499);
    expect((await limiter.consume('k')).allowed).toBe(false);
    clock.advance(1);
    expect(await limiter.consume('k')).toMatchObject({ allowed: true, remaining: 0 });
    clock.advance(10_000);
    expect((await limiter.peek('k')).remaining).toBe(5);
  });

  it('charges cost and says how long a bigger cost must wait', async () => {
    const { clock, limiter } = make(tokenBucket({ capacity: 10, refillPerSec: 1 }));
    expect(await limiter.consume('k', { cost: 7 })).toMatchObject({
      allowed: true,
      remaining: 3,
      resetMs: 7000,
    });
    const d = await limiter.consume('k', { cost: 5 });
    expect(d).toMatchObject({ allowed: false, remaining: 3, retryAfterMs: 2000 });
    clock.advance(2000);
    expect(await limiter.consume('k', { cost: 5 })).toMatchObject({ allowed: true, remaining: 0 });
  });

  it('keeps keys independent', async () => {
    const { limiter } = make(tokenBucket({ capacity: 1, refillPerSec: 1 }));
    expect((await limiter.consume('a')).allowed).toBe(true);
    expect((await limiter.consume('b')).allowed).toBe(true);
    expect((await limiter.consume('a')).allowed).toBe(false);
  });
});

describe('gcra', () => {
  it('admits burst back to back, then one per emission interval', async () => {
    // T = 1000 / 10 = 100 ms, burst 3
    const { clock, limiter } = make(gcra({ limit: 10, periodMs: 1000, burst: 3 }));
    expect(await drain(limiter, 'k', 5)).toBe(3);
    const d = await limiter.consume('k');
    expect(d).toMatchObject({ allowed: false, retryAfterMs: 100, remaining: 0 });
    clock.advance(99);
    expect((await limiter.consume('k')).allowed).toBe(false);
    clock.advance(1);
    expect((await limiter.consume('k')).allowed).toBe(true);
    expect((await limiter.consume('k')).allowed).toBe(false);
  });

  it('defaults burst to limit and reports remaining from the TAT', async () => {
    const { clock, limiter } = make(gcra({ limit: 4, periodMs: 400 }));
    expect(await limiter.consume('k')).toMatchObject({ allowed: true, remaining: 3, resetMs: 100 });
    expect(await limiter.consume('k', { cost: 3 })).toMatchObject({
      allowed: true,
      remaining: 0,
      resetMs: 400,
    });
    clock.advance(200);
    expect(await limiter.peek('k')).toMatchObject({ remaining: 2, resetMs: 200 });
  });
});

describe('fixedWindow', () => {
  it('resets exactly at the window boundary (so 2 x limit can pass around it)', async () => {
    const { clock, limiter } = make(fixedWindow({ limit: 3, windowMs: 1000 }));
    clock.advance(999);
    expect(await drain(limiter, 'k', 5)).toBe(3);
    expect(await limiter.consume('k')).toMatchObject({ allowed: false, retryAfterMs: 1 });
    clock.advance(1);
    expect(await drain(limiter, 'k', 5)).toBe(3);
  });
});

describe('slidingWindow counter', () => {
  it('weights the previous window by the part of it still inside the sliding window', async () => {
    const { clock, limiter } = make(slidingWindow({ limit: 10, windowMs: 1000 }));
    expect(await drain(limiter, 'k', 10)).toBe(10);
    clock.advance(1250); // 25% into the next window: estimate = 10 x 0.75 + 0 = 7.5
    expect((await limiter.peek('k')).remaining).toBe(2);
    expect(await drain(limiter, 'k', 5)).toBe(2);
    const d = await limiter.consume('k');
    // needs 10 x (1 - f) + 2 + 1 <= 10, so f >= 0.3: 50 ms from now
    expect(d).toMatchObject({ allowed: false, retryAfterMs: 50 });
    clock.advance(49);
    expect((await limiter.consume('k')).allowed).toBe(false);
    clock.advance(1);
    expect((await limiter.consume('k')).allowed).toBe(true);
  });

  it('forgets everything two windows later', async () => {
    const { clock, limiter } = make(slidingWindow({ limit: 2, windowMs: 100 }));
    await drain(limiter, 'k', 2);
    clock.advance(200);
    expect((await limiter.peek('k')).remaining).toBe(2);
  });
});

describe('slidingWindow log', () => {
  it('admits a unit again exactly windowMs after it was admitted', async () => {
    const { clock, limiter } = make(slidingWindow({ limit: 3, windowMs: 1000, mode: 'log' }));
    await limiter.consume('k'); // t=0
    clock.advance(400);
    await limiter.consume('k', { cost: 2 }); // t=400
    const d = await limiter.consume('k');
    expect(d).toMatchObject({ allowed: false, retryAfterMs: 600, remaining: 0 });
    clock.advance(599);
    expect((await limiter.consume('k')).allowed).toBe(false);
    clock.advance(1); // t=1000: the first unit leaves (t - W < ts is false at equality)
    expect(await limiter.consume('k')).toMatchObject({ allowed: true, remaining: 0 });
    // cost 2 needs both t=400 units gone: at 1400
    expect((await limiter.consume('k', { cost: 2 })).retryAfterMs).toBe(400);
  });

  it('never holds more than limit in any window, unlike fixedWindow', async () => {
    const { clock, limiter } = make(slidingWindow({ limit: 3, windowMs: 1000, mode: 'log' }));
    clock.advance(999);
    expect(await drain(limiter, 'k', 5)).toBe(3);
    clock.advance(1); // a new fixed window would reset here; the log does not
    expect(await drain(limiter, 'k', 5)).toBe(0);
  });
});
