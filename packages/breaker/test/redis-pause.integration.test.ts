import { until, useRedis } from '@oms/testkit';
import { afterAll, describe, expect, it } from 'vitest';
import { type CircuitBreaker, circuitBreaker, isOmsBreakerError } from '../src/index.js';
import { redisBreakerStore } from '../src/redis/index.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const boom = () => {
  throw new Error('boom');
};

describe('redisBreakerStore while Redis hangs (SIGSTOP)', () => {
  const redis = useRedis({ dedicated: true });
  const closers: (() => Promise<void>)[] = [];
  afterAll(async () => {
    for (const c of closers.reverse()) await c();
  });

  function instance(name: string) {
    const client = redis.client();
    client.on('error', () => {});
    const store = redisBreakerStore({
      redis: client,
      prefix: `${redis.prefix}p:`,
      commandTimeoutMs: 300,
      syncIntervalMs: 200,
    });
    const breaker = circuitBreaker({ name, consecutiveFailures: 2, openMs: 1500, store });
    const modes: string[] = [];
    store.on('modeChange', (e) => modes.push(e.mode));
    closers.push(
      () => breaker.close(),
      () => store.close(),
    );
    return { store, breaker, modes };
  }

  /** Runs one call and classifies the outcome; anything but our own errors is a bug. */
  const unexpected: unknown[] = [];
  async function call(b: CircuitBreaker, fn: () => unknown = () => 'ok'): Promise<string> {
    try {
      await b.execute(fn);
      return 'ok';
    } catch (e) {
      if (isOmsBreakerError(e) && e.code === 'ERR_OMS_BREAKER_OPEN') return 'rejected';
      if ((e as Error).message === 'boom') return 'failed';
      unexpected.push(e);
      return 'error';
    }
  }

  it('execute() never waits on a paused Redis longer than commandTimeoutMs, never throws, and resyncs on resume', async () => {
    const a = instance('dep');
    const b = instance('dep');
    await Promise.all([a.store.ready(), b.store.ready()]);

    // A shared open, so that half-open needs the probe lease from Redis.
    await call(a.breaker, boom);
    await call(a.breaker, boom);
    await until(() => b.breaker.state === 'open', { timeoutMs: 5000, what: 'the trip to reach instance b' });

    await redis.pause();
    let resumed = false;
    try {
      // The closed/open paths never touch Redis.
      expect(await call(b.breaker)).toBe('rejected');
      // Half-open asks Redis for the probe lease; the hung command is abandoned after commandTimeoutMs and
      // the instance probes on its own.
      await until(() => b.breaker.state === 'half-open', {
        timeoutMs: 5000,
        what: 'the open period to elapse',
      });
      const t0 = Date.now();
      expect(await call(b.breaker)).toBe('ok');
      const probeMs = Date.now() - t0;
      // Generous against a loaded machine; a call that waited for Redis would hang until resume().
      expect(probeMs, `the probe waited ${probeMs} ms on a paused Redis`).toBeLessThan(5000);
      expect(b.breaker.state).toBe('closed');
      expect(b.store.mode).toBe('local');

      const outcomes = new Set<string>();
      for (let i = 0; i < 1000; i++) outcomes.add(await call(b.breaker));
      expect([...outcomes]).toEqual(['ok']);
      // A trip while Redis hangs opens this instance at once and is not reported as an error.
      expect([await call(b.breaker, boom), await call(b.breaker, boom), await call(b.breaker)]).toEqual([
        'failed',
        'failed',
        'rejected',
      ]);
      expect(unexpected).toEqual([]);

      // A store created while Redis hangs: ready() takes a signal, and close() does not hang either.
      const late = redisBreakerStore({
        redis: redis.client(),
        prefix: `${redis.prefix}p:`,
        commandTimeoutMs: 300,
      });
      await expect(late.ready(AbortSignal.timeout(200))).rejects.toMatchObject({ name: 'TimeoutError' });
      await late.close();
    } finally {
      await redis.resume();
      resumed = true;
    }
    expect(resumed).toBe(true);

    // Back to shared mode on both, and pushes flow again.
    await until(() => a.store.mode === 'shared' && b.store.mode === 'shared', {
      timeoutMs: 15_000,
      what: 'both stores to resync',
    });
    // On a loaded machine a command may time out again just after resume() and flap the mode once more;
    // what matters is that the store only ever moved between local and shared, and came back to shared.
    expect(b.modes.length).toBeGreaterThanOrEqual(2);
    expect(b.modes.every((m, i) => m === (i % 2 === 0 ? 'local' : 'shared'))).toBe(true);
    expect(b.modes.at(-1)).toBe('shared');
    // Whatever the hung commands left behind in Redis, successful calls bring both back to closed.
    const end = Date.now() + 15_000;
    while (a.breaker.state !== 'closed' || b.breaker.state !== 'closed') {
      if (Date.now() > end) throw new Error('timed out waiting for both breakers to close again');
      await Promise.all([call(a.breaker), call(b.breaker)]);
      await sleep(50);
    }
    await call(a.breaker, boom);
    await call(a.breaker, boom);
    await until(() => b.breaker.state === 'open', {
      timeoutMs: 5000,
      what: 'a trip after the resync to reach instance b',
    });
    expect(unexpected).toEqual([]);
  }, 90_000);
});
