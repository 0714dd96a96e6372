import { getEventListeners } from 'node:events';
import { fakeClock } from '@oms/testkit';
import { describe, expect, it } from 'vitest';
import { isOmsBreakerError, timeout } from '../src/index.js';

describe('timeout', () => {
  it('cooperative: aborts ctx.signal at the deadline and reports ERR_OMS_BREAKER_TIMEOUT', async () => {
    const clock = fakeClock();
    const t = timeout(100, { strategy: 'cooperative', clock });
    const p = t.execute(
      ({ signal }) =>
        new Promise((_, reject) =>
          signal.addEventListener('abort', () => reject(new Error('aborted by signal'))),
        ),
    );
    const settled = p.catch((err: unknown) => err);
    await clock.advanceAsync(99);
    await clock.advanceAsync(1);
    const e = await settled;
    expect(isOmsBreakerError(e) && e.code).toBe('ERR_OMS_BREAKER_TIMEOUT');
  });

  it('cooperative: a function that ignores the signal still returns its value', async () => {
    const clock = fakeClock();
    const t = timeout(100, { strategy: 'cooperative', clock });
    const p = t.execute(() => new Promise((r) => clock.setTimeout(() => r('late'), 150)));
    await clock.advanceAsync(150);
    expect(await p).toBe('late');
  });

  it('aggressive is the default: a function that never settles is rejected at the deadline, its signal aborted', async () => {
    const clock = fakeClock();
    const t = timeout(100, { clock });
    let signal: AbortSignal | undefined;
    let settled: unknown = 'pending';
    const p = t.execute((ctx) => {
      signal = ctx.signal;
      return new Promise(() => {});
    });
    p.catch((err: unknown) => {
      settled = err;
    });
    await clock.advanceAsync(99);
    expect(settled).toBe('pending');
    expect(signal?.aborted).toBe(false);
    await clock.advanceAsync(1);
    expect(settled).toMatchObject({ code: 'ERR_OMS_BREAKER_TIMEOUT' });
    expect(signal?.aborted).toBe(true);
    expect(signal?.reason).toMatchObject({ code: 'ERR_OMS_BREAKER_TIMEOUT' });
  });

  it('the default does not wait for a function that ignores the signal: its late value is dropped', async () => {
    const clock = fakeClock();
    const t = timeout(100, { clock });
    const p = t
      .execute(() => new Promise((r) => clock.setTimeout(() => r('late'), 150)))
      .catch((err: unknown) => err);
    await clock.advanceAsync(150);
    expect(await p).toMatchObject({ code: 'ERR_OMS_BREAKER_TIMEOUT' });
  });

  it('aggressive: rejects at the deadline even if the function ignores the signal', async () => {
    const clock = fakeClock();
    const t = timeout(100, { strategy: 'aggressive', clock });
    let signal: AbortSignal | undefined;
    const p = t.execute((ctx) => {
      signal = ctx.signal;
      return new Promise(() => {});
    });
    const settled = p.catch((err: unknown) => err);
    await clock.advanceAsync(100);
    expect(await settled).toMatchObject({ code: 'ERR_OMS_BREAKER_TIMEOUT' });
    expect(signal?.aborted).toBe(true);
  });

  it('aggressive: the caller aborting rejects at once with its reason, even if the function ignores the signal', async () => {
    const clock = fakeClock();
    const t = timeout(1000, { strategy: 'aggressive', clock });
    const ac = new AbortController();
    let signal: AbortSignal | undefined;
    const p = t
      .execute((ctx) => {
        signal = ctx.signal;
        return new Promise(() => {});
      }, ac.signal)
      .catch((err: unknown) => err);
    await clock.advanceAsync(10);
    ac.abort(new Error('user cancelled'));
    expect(await p).toMatchObject({ message: 'user cancelled' });
    expect(signal?.aborted).toBe(true);
    await clock.advanceAsync(1000); // the deadline passing later changes nothing
    await t.close();
  });

  it('aggressive: a call abandoned at the deadline leaves no listener on the caller signal', async () => {
    const clock = fakeClock();
    const t = timeout(100, { strategy: 'aggressive', clock });
    const ac = new AbortController();
    const p = t
      .execute(({ signal }) => {
        void signal; // materialise the per-call signal, which listens to the caller's
        return new Promise(() => {});
      }, ac.signal)
      .catch((err: unknown) => err);
    await Promise.resolve();
    expect(getEventListeners(ac.signal, 'abort').length).toBeGreaterThan(0);
    await clock.advanceAsync(100);
    expect(await p).toMatchObject({ code: 'ERR_OMS_BREAKER_TIMEOUT' });
    expect(getEventListeners(ac.signal, 'abort')).toEqual([]);
  });

  it('shares one timer between concurrent calls', async () => {
    const clock = fakeClock();
    const t = timeout(1000, { clock });
    const done: (() => void)[] = [];
    const ps = Array.from({ length: 100 }, () => t.execute(() => new Promise<void>((r) => done.push(r))));
    await Promise.resolve();
    expect(clock.pending()).toBe(1);
    for (const d of done) d();
    await Promise.all(ps);
  });

  it.each([
    ['default (aggressive)', {}],
    ['cooperative', { strategy: 'cooperative' }],
  ] as const)('%s: passes an aborted caller signal through and does not call it a timeout', async (_, o) => {
    const clock = fakeClock();
    const t = timeout(1000, { ...o, clock });
    const ac = new AbortController();
    const p = t.execute(
      ({ signal }) =>
        new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason))),
      ac.signal,
    );
    ac.abort(new Error('user cancelled'));
    await expect(p).rejects.toThrow('user cancelled');
  });

  it('handles a synchronous throw and a plain return value', async () => {
    const t = timeout(1000, { strategy: 'aggressive' });
    await expect(
      t.execute(() => {
        throw new Error('sync');
      }),
    ).rejects.toThrow('sync');
    expect(await t.execute(() => 5)).toBe(5);
    const c = timeout(1000, { strategy: 'cooperative' });
    await expect(
      c.execute(() => {
        throw new Error('sync');
      }),
    ).rejects.toThrow('sync');
    expect(await c.execute(() => 5)).toBe(5);
    await t.close();
    await c.close();
  });

  it('close() clears the timer and rejects in-flight aggressive calls with ERR_OMS_BREAKER_CLOSED', async () => {
    const clock = fakeClock();
    const t = timeout(1000, { strategy: 'aggressive', clock });
    const p = t.execute(() => new Promise(() => {}));
    expect(clock.pending()).toBe(1);
    await t.close();
    await expect(p).rejects.toMatchObject({ code: 'ERR_OMS_BREAKER_CLOSED' });
    expect(clock.pending()).toBe(0);
    await expect(t.execute(() => 1)).rejects.toMatchObject({ code: 'ERR_OMS_BREAKER_CLOSED' });
  });
});
