import { fakeClock } from '@oms/testkit';
import { describe, expect, it } from 'vitest';
import {
  adaptiveConcurrency,
  circuitBreaker,
  fallback,
  type Operation,
  pipeline,
  timeout,
} from '../src/index.js';

/** Waits until its signal aborts, then fails with the abort reason, as fetch() does. */
const honoursAbort: Operation<never> = ({ signal }) =>
  new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason)));

/** Starts a call, then aborts the signal the caller passed to execute(); resolves to how it settled. */
async function abortedCall<T>(
  execute: (fn: Operation<T>, signal: AbortSignal) => Promise<unknown>,
  fn: Operation<T>,
): Promise<unknown> {
  const ac = new AbortController();
  const p = execute(fn, ac.signal).then(
    () => 'resolved',
    (e: unknown) => e,
  );
  await Promise.resolve();
  ac.abort(new Error('the caller gave up'));
  return p;
}

describe("a caller's own abort is an ignored outcome", () => {
  it('circuit breaker: neither a success nor a failure, so it never trips the breaker', async () => {
    const b = circuitBreaker({ name: 'dep', consecutiveFailures: 2, clock: fakeClock() });
    const events: string[] = [];
    b.on('success', () => events.push('success'));
    b.on('failure', () => events.push('failure'));
    for (let i = 0; i < 5; i++) {
      const e = await abortedCall((fn, s) => b.execute(fn, s), honoursAbort);
      expect((e as Error).message).toBe('the caller gave up');
    }
    expect(b.state).toBe('closed');
    expect(b.stats()).toMatchObject({ consecutiveFailures: 0 });
    expect(events).toEqual([]);
    // A real failure still counts.
    await b.execute(() => Promise.reject(new Error('boom'))).catch(() => {});
    expect(b.stats()).toMatchObject({ consecutiveFailures: 1 });
  });

  it('circuit breaker: an aborted probe frees its half-open slot and leaves the breaker half-open', async () => {
    const clock = fakeClock();
    const b = circuitBreaker({ name: 'dep', consecutiveFailures: 1, openMs: 100, clock });
    await b.execute(() => Promise.reject(new Error('boom'))).catch(() => {});
    clock.advance(100);
    expect(b.state).toBe('half-open');
    await abortedCall((fn, s) => b.execute(fn, s), honoursAbort);
    expect(b.state).toBe('half-open');
    expect(await b.execute(() => 'ok')).toBe('ok'); // the slot is free again: this probe closes it
    expect(b.state).toBe('closed');
  });

  it('circuit breaker: a timeout inside the pipeline is not the caller aborting, so it still counts', async () => {
    const clock = fakeClock();
    const b = circuitBreaker({ name: 'dep', consecutiveFailures: 1, clock });
    const p = pipeline(timeout(50, { clock }), b).execute(honoursAbort);
    const settled = p.catch((e: unknown) => e);
    await clock.advanceAsync(50);
    expect(await settled).toMatchObject({ code: 'ERR_OMS_BREAKER_TIMEOUT' });
    expect(b.state).toBe('open');
  });

  it('adaptive concurrency: the limit does not shrink on callers giving up', async () => {
    const limiter = adaptiveConcurrency({ algorithm: 'aimd', initialLimit: 10, clock: fakeClock() });
    for (let i = 0; i < 5; i++) await abortedCall((fn, s) => limiter.execute(fn, s), honoursAbort);
    expect(limiter.limit).toBe(10);
    expect(limiter.inflight).toBe(0);
    await limiter.execute(() => Promise.reject(new Error('overloaded'))).catch(() => {});
    expect(limiter.limit).toBe(9); // a real error is a drop
  });

  it('fallback: the caller gets its abort, not the substitute value', async () => {
    const f = fallback('cached');
    const served: unknown[] = [];
    f.on('fallback', (e) => served.push(e.error));
    const e = await abortedCall((fn, s) => f.execute(fn, s), honoursAbort);
    expect((e as Error).message).toBe('the caller gave up');
    expect(served).toEqual([]);
    // Any other failure is still replaced.
    expect(await f.execute(() => Promise.reject(new Error('down')))).toBe('cached');
  });
});
