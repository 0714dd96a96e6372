import { fakeClock } from '@oms/testkit';
import { describe, expect, it } from 'vitest';
import {
  adaptiveConcurrency,
  bulkhead,
  circuitBreaker,
  constantBackoff,
  type ExecuteContext,
  fallback,
  isOmsBreakerError,
  type Policy,
  pipeline,
  retry,
  timeout,
} from '../src/index.js';

const deferred = () => {
  let resolve!: (v?: unknown) => void;
  const promise = new Promise((r) => (resolve = r));
  return { promise, resolve };
};

describe('bulkhead', () => {
  it('runs maxConcurrent, queues maxQueue, rejects the rest with ERR_OMS_BREAKER_BULKHEAD_FULL', async () => {
    const b = bulkhead({ maxConcurrent: 2, maxQueue: 1 });
    const gates = [deferred(), deferred(), deferred()];
    const started: number[] = [];
    const run = (i: number) =>
      b.execute(async () => {
        started.push(i);
        await gates[i]!.promise;
        return i;
      });
    const ps = [run(0), run(1), run(2)];
    const e = await run(3).catch((err: unknown) => err);
    expect(isOmsBreakerError(e) && e.code).toBe('ERR_OMS_BREAKER_BULKHEAD_FULL');
    await Promise.resolve();
    expect(started).toEqual([0, 1]);
    expect([b.active, b.queued]).toEqual([2, 1]);
    gates[0]!.resolve();
    gates[1]!.resolve();
    gates[2]!.resolve();
    expect(await Promise.all(ps)).toEqual([0, 1, 2]);
    expect([b.active, b.queued]).toEqual([0, 0]);
  });

  it('a queued call gives up after queueTimeoutMs', async () => {
    const clock = fakeClock();
    const b = bulkhead({ maxConcurrent: 1, maxQueue: 5, queueTimeoutMs: 100, clock });
    const gate = deferred();
    const first = b.execute(() => gate.promise);
    const queued = b.execute(() => 'never').catch((e: unknown) => e);
    clock.advance(100);
    expect(await queued).toMatchObject({ code: 'ERR_OMS_BREAKER_BULKHEAD_FULL' });
    gate.resolve();
    await first;
    expect(clock.pending()).toBe(0);
  });

  it('an aborted signal takes a call out of the queue; close() rejects the queue', async () => {
    const b = bulkhead({ maxConcurrent: 1, maxQueue: 5 });
    const gate = deferred();
    const first = b.execute(() => gate.promise);
    const ac = new AbortController();
    const a = b.execute(() => 1, ac.signal).catch((e: unknown) => e);
    const c = b.execute(() => 1).catch((e: unknown) => e);
    ac.abort(new Error('stop'));
    expect(await a).toMatchObject({ message: 'stop' });
    await b.close();
    expect(await c).toMatchObject({ code: 'ERR_OMS_BREAKER_CLOSED' });
    gate.resolve();
    await first;
  });
});

describe('adaptiveConcurrency', () => {
  it('aimd: grows while the limit is used and cuts on errors; rejects over the limit', async () => {
    const a = adaptiveConcurrency({ algorithm: 'aimd', initialLimit: 4, minLimit: 2, maxLimit: 6 });
    const gates = Array.from({ length: 4 }, deferred);
    const ps = gates.map((g) => a.execute(() => g.promise));
    const e = await a.execute(() => 1).catch((err: unknown) => err);
    expect(isOmsBreakerError(e) && e.code).toBe('ERR_OMS_BREAKER_CONCURRENCY_LIMIT');
    for (const g of gates) g.resolve();
    await Promise.all(ps);
    expect(a.limit).toBe(6); // +1 per busy sample, capped at maxLimit
    for (let i = 0; i < 10; i++) await a.execute(() => Promise.reject(new Error('overload'))).catch(() => {});
    expect(a.limit).toBe(2);
  });

  it('aimd: a call slower than latencyThresholdMs counts as a drop', async () => {
    const clock = fakeClock();
    const a = adaptiveConcurrency({ algorithm: 'aimd', initialLimit: 10, latencyThresholdMs: 50, clock });
    const p = a.execute(() => new Promise((r) => clock.setTimeout(() => r(1), 60)));
    await clock.advanceAsync(60);
    await p;
    expect(a.limit).toBe(9);
  });

  it('gradient: shrinks when latency rises above its long-term average and recovers when it falls', async () => {
    const clock = fakeClock();
    const a = adaptiveConcurrency({
      algorithm: 'gradient',
      initialLimit: 20,
      minLimit: 1,
      maxLimit: 100,
      clock,
    });
    const batch = async (n: number, rtt: number) => {
      const ps = Array.from({ length: n }, () =>
        a.execute(() => new Promise((r) => clock.setTimeout(() => r(1), rtt))),
      );
      await clock.advanceAsync(rtt);
      await Promise.all(ps);
    };
    for (let i = 0; i < 20; i++) await batch(Math.max(1, Math.floor(a.limit * 0.8)), 10);
    const healthy = a.limit;
    expect(healthy).toBeGreaterThan(20);
    for (let i = 0; i < 20; i++) await batch(Math.max(1, Math.floor(a.limit * 0.8)), 100);
    expect(a.limit).toBeLessThan(healthy);
  });
});

describe('fallback', () => {
  it('replaces matching errors with a value or a function result', async () => {
    const f = fallback('cached', { when: (e) => (e as Error).message === 'down' });
    expect(
      await f.execute(() => {
        throw new Error('down');
      }),
    ).toBe('cached');
    await expect(f.execute(() => Promise.reject(new Error('bug')))).rejects.toThrow('bug');
    const g = fallback((err) => `fallback for ${(err as Error).message}`);
    expect(await g.execute(() => Promise.reject(new Error('x')))).toBe('fallback for x');
  });
});

describe('pipeline', () => {
  it('runs outermost first, passes ctx.attempt and ctx.signal inward', async () => {
    const clock = fakeClock();
    const seen: ExecuteContext[] = [];
    const p = pipeline(
      timeout(1000, { clock }),
      retry({ maxAttempts: 3, backoff: constantBackoff(0), clock }),
      circuitBreaker({ name: 'p', clock }),
    );
    const ac = new AbortController();
    const v = await p.execute((ctx) => {
      seen.push(ctx);
      if (ctx.attempt < 3) throw new Error('again');
      return ctx.attempt;
    }, ac.signal);
    expect(v).toBe(3);
    expect(seen.map((c) => c.attempt)).toEqual([1, 2, 3]);
    // every attempt sees the same per-call signal, which follows the caller's
    expect(seen[0]!.signal).toBe(seen[2]!.signal);
    expect(seen[0]!.signal.aborted).toBe(false);
  });

  it('the timeout outside the retry bounds the whole retry loop', async () => {
    const clock = fakeClock();
    const p = pipeline(
      timeout(250, { clock }),
      retry({ maxAttempts: 10, backoff: constantBackoff(100), clock }),
    );
    let n = 0;
    const r = p
      .execute(() => {
        n++;
        throw new Error('fail');
      })
      .catch((e: unknown) => e);
    await clock.advanceAsync(1000);
    expect(await r).toMatchObject({ code: 'ERR_OMS_BREAKER_TIMEOUT' });
    expect(n).toBe(3);
  });

  it('composes a foreign Policy and flattens nested pipelines', async () => {
    const log: string[] = [];
    const mine: Policy = {
      async execute(fn, signal) {
        log.push('before');
        try {
          return await fn({ signal: signal ?? new AbortController().signal, attempt: 7 });
        } finally {
          log.push('after');
        }
      },
    };
    const inner = pipeline(mine, fallback(0));
    const outer = pipeline(retry({ maxAttempts: 1 }), inner);
    expect(outer.policies.length).toBe(3);
    expect(await outer.execute(({ attempt }) => attempt)).toBe(7);
    expect(
      await outer.execute(() => {
        throw new Error('x');
      }),
    ).toBe(0);
    expect(log).toEqual(['before', 'after', 'before', 'after']);
  });

  it('handles a synchronous throw and a non-promise value through every layer', async () => {
    const p = pipeline(
      fallback('fb', { when: (e) => (e as Error).message === 'fb' }),
      timeout(1000),
      retry({ maxAttempts: 2, backoff: constantBackoff(0) }),
      circuitBreaker({ name: 's' }),
      bulkhead({ maxConcurrent: 1 }),
      adaptiveConcurrency({ algorithm: 'aimd' }),
    );
    expect(await p.execute(() => 42)).toBe(42);
    await expect(
      p.execute(() => {
        throw new Error('sync');
      }),
    ).rejects.toThrow('sync');
    expect(
      await p.execute(() => {
        throw new Error('fb');
      }),
    ).toBe('fb');
    await p.close();
  });

  it('rejects at once when the caller signal is already aborted', async () => {
    const p = pipeline(timeout(1000), retry());
    let called = false;
    await expect(
      p.execute(
        () => {
          called = true;
        },
        AbortSignal.abort(new Error('gone')),
      ),
    ).rejects.toThrow('gone');
    expect(called).toBe(false);
  });
});

describe('events', () => {
  it('each unsubscribe removes its own registration only, once', async () => {
    const b = circuitBreaker({ name: 'ev', consecutiveFailures: 1 });
    let n = 0;
    const fn = () => n++;
    const off1 = b.on('success', fn);
    const off2 = b.on('success', fn);
    off1();
    off1();
    await b.execute(() => 1);
    expect(n).toBe(1);
    off2();
    await b.execute(() => 1);
    expect(n).toBe(1);
  });
});
