import { fakeClock } from '@oms/testkit';
import { describe, expect, it } from 'vitest';
import {
  constantBackoff,
  decorrelatedJitterBackoff,
  exponentialBackoff,
  fullJitterBackoff,
  isOmsBreakerError,
  linearBackoff,
  retry,
  retryBudget,
} from '../src/index.js';

describe('backoffs', () => {
  const r = () => 0.5;
  it('constant, linear and exponential follow their formulas', () => {
    expect([1, 2, 3].map((n) => constantBackoff(50).delay(n, 0, r, 1e9))).toEqual([50, 50, 50]);
    expect([1, 2, 3].map((n) => linearBackoff({ initialMs: 100, stepMs: 50 }).delay(n, 0, r, 1e9))).toEqual([
      100, 150, 200,
    ]);
    expect(
      [1, 2, 3].map((n) => exponentialBackoff({ initialMs: 10, factor: 3 }).delay(n, 0, r, 1e9)),
    ).toEqual([10, 30, 90]);
  });
  it('full jitter is rand(0, min(cap, initial × factor^n))', () => {
    const b = fullJitterBackoff({ initialMs: 100 });
    expect(b.delay(3, 0, () => 0.5, 1e9)).toBe(200);
    expect(b.delay(10, 0, () => 0.999, 1000)).toBeLessThanOrEqual(1000);
  });
  it('decorrelated jitter is min(cap, rand(base, prev × 3))', () => {
    const b = decorrelatedJitterBackoff({ baseMs: 100 });
    expect(b.delay(2, 400, () => 0, 1e9)).toBe(100);
    expect(b.delay(2, 400, () => 1, 1e9)).toBe(1200);
    expect(b.delay(2, 400, () => 1, 500)).toBe(500);
  });
});

describe('retry', () => {
  it('retries until success with ctx.attempt counting up, waiting the backoff on the clock', async () => {
    const clock = fakeClock();
    const r = retry({ maxAttempts: 3, backoff: constantBackoff(100), clock });
    const attempts: number[] = [];
    const p = r.execute(({ attempt }) => {
      attempts.push(attempt);
      if (attempt < 3) throw new Error('flaky');
      return 'done';
    });
    await clock.advanceAsync(99);
    expect(attempts).toEqual([1]);
    await clock.advanceAsync(1);
    expect(attempts).toEqual([1, 2]);
    await clock.advanceAsync(100);
    expect(await p).toBe('done');
    expect(attempts).toEqual([1, 2, 3]);
  });

  it('feeds each delay back into decorrelated jitter: min(maxDelayMs, rand(base, prev × 3))', async () => {
    const clock = fakeClock();
    const r = retry({
      maxAttempts: 5,
      backoff: decorrelatedJitterBackoff({ baseMs: 100 }),
      maxDelayMs: 2000,
      random: () => 1,
      clock,
    });
    const delays: number[] = [];
    r.on('retry', (e) => delays.push(e.delayMs));
    const p = r
      .execute(() => {
        throw new Error('down');
      })
      .catch(() => {});
    await clock.advanceAsync(10_000);
    await p;
    expect(delays).toEqual([300, 900, 2000, 2000]);
  });

  it('gives up after maxAttempts with the last error and a giveUp event', async () => {
    const r = retry({ maxAttempts: 2, backoff: constantBackoff(0) });
    const gave: string[] = [];
    r.on('giveUp', (e) => gave.push(`${e.reason}:${e.attempts}`));
    let n = 0;
    await expect(
      r.execute(() => {
        n++;
        throw new Error(`e${n}`);
      }),
    ).rejects.toThrow('e2');
    expect(gave).toEqual(['max-attempts:2']);
  });

  it('does not retry when shouldRetry says no', async () => {
    const r = retry({
      maxAttempts: 5,
      backoff: constantBackoff(0),
      shouldRetry: (e) => (e as Error).message !== 'fatal',
    });
    let n = 0;
    await expect(
      r.execute(() => {
        n++;
        throw new Error('fatal');
      }),
    ).rejects.toThrow('fatal');
    expect(n).toBe(1);
  });

  it('honours retryAfterMs on the error and gives up when it exceeds maxDelayMs', async () => {
    const clock = fakeClock();
    const r = retry({ maxAttempts: 3, backoff: constantBackoff(10), maxDelayMs: 1000, clock });
    let n = 0;
    const p = r.execute(() => {
      n++;
      if (n === 1) throw Object.assign(new Error('429'), { retryAfterMs: 500 });
      return n;
    });
    await clock.advanceAsync(499);
    expect(n).toBe(1);
    await clock.advanceAsync(1);
    expect(await p).toBe(2);
    const reasons: string[] = [];
    r.on('giveUp', (e) => reasons.push(e.reason));
    await expect(
      r.execute(() => {
        throw Object.assign(new Error('429'), { retryAfterMs: 5000 });
      }),
    ).rejects.toThrow('429');
    expect(reasons).toEqual(['retry-after-too-long']);
  });

  it('an AbortSignal cancels the sleep at once', async () => {
    const clock = fakeClock();
    const r = retry({ maxAttempts: 3, backoff: constantBackoff(10_000), clock });
    const ac = new AbortController();
    let n = 0;
    const p = r.execute(() => {
      n++;
      throw new Error('x');
    }, ac.signal);
    await clock.advanceAsync(10);
    ac.abort(new Error('caller gave up'));
    await expect(p).rejects.toThrow('caller gave up');
    expect(n).toBe(1);
    expect(clock.pending()).toBe(0);
  });

  it('close() rejects sleeping retries with ERR_OMS_BREAKER_CLOSED and clears their timers', async () => {
    const clock = fakeClock();
    const r = retry({ maxAttempts: 3, backoff: constantBackoff(10_000), clock });
    const p = r.execute(() => {
      throw new Error('x');
    });
    await clock.advanceAsync(1);
    await r.close();
    await expect(p).rejects.toMatchObject({ code: 'ERR_OMS_BREAKER_CLOSED' });
    expect(clock.pending()).toBe(0);
  });
});

describe('retryBudget', () => {
  it('10,000 failing calls with ratio 0.2 retry at most 0.2 × 10,000 + minPerSec × (elapsed + 1 s)', async () => {
    const clock = fakeClock();
    const budget = retryBudget({ ratio: 0.2, minPerSec: 10, ttlMs: 10_000, clock });
    const r = retry({ maxAttempts: 3, backoff: constantBackoff(0), budget, clock });
    const start = clock.now();
    let attempts = 0;
    let budgetErrors = 0;
    for (let i = 0; i < 10_000; i++) {
      clock.advance(1); // 1,000 calls per second
      await r
        .execute(() => {
          attempts++;
          throw new Error('down');
        })
        .catch((e) => {
          if (isOmsBreakerError(e) && e.code === 'ERR_OMS_BREAKER_RETRY_BUDGET') budgetErrors++;
        });
    }
    const elapsedSec = (clock.now() - start) / 1000;
    const retries = attempts - 10_000;
    // The floor grants one second's worth (minPerSec) at start, then refills at minPerSec.
    expect(retries).toBeLessThanOrEqual(0.2 * 10_000 + 10 * (elapsedSec + 1));
    expect(retries).toBeGreaterThan(0.2 * 10_000 * 0.9); // the budget is actually usable
    expect(budgetErrors).toBeGreaterThan(0);
    expect(budget.stats()).toMatchObject({ requests: 10_000, retries });
  });

  it('allows minPerSec retries per second without traffic, from the first second on, and emits denied when exhausted', () => {
    const clock = fakeClock();
    const budget = retryBudget({ ratio: 0, minPerSec: 2, ttlMs: 1000, clock });
    const denied: number[] = [];
    budget.on('denied', (e) => denied.push(e.balance));
    // Right after start, before any deposit: the floor is there already.
    expect([budget.tryWithdraw(), budget.tryWithdraw(), budget.tryWithdraw()]).toEqual([true, true, false]);
    clock.advance(1000);
    expect([budget.tryWithdraw(), budget.tryWithdraw(), budget.tryWithdraw()]).toEqual([true, true, false]);
    expect(denied.length).toBe(2);
  });

  it('the first failures after start retry under the default floor, and a refusal says what the budget allows', async () => {
    const clock = fakeClock();
    const budget = retryBudget({ clock }); // defaults: ratio 0.2, minPerSec 10, ttlMs 10 s
    expect([budget.ratio, budget.minPerSec, budget.ttlMs]).toEqual([0.2, 10, 10_000]);
    const r = retry({ maxAttempts: 2, backoff: constantBackoff(0), budget, clock });
    const outcomes: string[] = [];
    let message = '';
    for (let i = 0; i < 3; i++) {
      await r
        .execute(() => Promise.reject(new Error('down')))
        .catch((e) => {
          outcomes.push(isOmsBreakerError(e) ? e.code : (e as Error).message);
        });
    }
    expect(outcomes).toEqual(['down', 'down', 'down']); // each retried, then failed with its own error
    for (let i = 0; i < 20 && message === ''; i++) {
      await r
        .execute(() => Promise.reject(new Error('down')))
        .catch((e) => {
          if (isOmsBreakerError(e) && e.code === 'ERR_OMS_BREAKER_RETRY_BUDGET') message = e.message;
        });
    }
    expect(message).toContain('retries in the last 10 s already used the 20% of requests it allows');
    expect(message).toContain('floor of 10 per second');
    expect(message).not.toContain('failing for many callers');
  });

  it('deposits expire after ttlMs', () => {
    const clock = fakeClock();
    const budget = retryBudget({ ratio: 0.5, minPerSec: 0, ttlMs: 1000, clock });
    for (let i = 0; i < 10; i++) budget.deposit();
    expect(budget.balance()).toBeCloseTo(5);
    clock.advance(1001);
    expect(budget.balance()).toBe(0);
    expect(budget.tryWithdraw()).toBe(false);
  });
});
