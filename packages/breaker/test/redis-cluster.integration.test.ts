import { until, useRedisCluster } from '@oms/testkit';
import { afterAll, describe, expect, it } from 'vitest';
import { circuitBreaker, isOmsBreakerError } from '../src/index.js';
import { redisBreakerStore } from '../src/redis/index.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('redisBreakerStore on a Redis Cluster', () => {
  const cluster = useRedisCluster({ masters: 3 });
  const closers: (() => Promise<void>)[] = [];
  afterAll(async () => {
    for (const c of closers.reverse()) await c();
  });

  function instance() {
    const store = redisBreakerStore({ redis: cluster.client(), prefix: cluster.prefix, syncIntervalMs: 200 });
    const breaker = circuitBreaker({ name: 'inventory', consecutiveFailures: 2, openMs: 500, store });
    let probes = 0;
    breaker.on('success', (e) => {
      if (e.state === 'half-open') probes++;
    });
    closers.push(
      () => breaker.close(),
      () => store.close(),
    );
    return { store, breaker, probes: () => probes };
  }

  it('shares a trip and runs one probe across instances, with no errors but our own', async () => {
    const a = instance();
    const b = instance();
    await Promise.all([
      a.store.ready(AbortSignal.timeout(20_000)),
      b.store.ready(AbortSignal.timeout(20_000)),
    ]);
    for (let i = 0; i < 2; i++) {
      await a.breaker
        .execute(() => {
          throw new Error('boom');
        })
        .catch(() => {});
    }
    await until(() => b.breaker.state === 'open', { timeoutMs: 5000, what: 'the trip to reach instance b' });
    await sleep(550);
    // Both instances are half-open: both try at once, the lease lets one probe through.
    const slowProbe = () => sleep(200).then(() => 'ok');
    const outcomes = await Promise.all(
      [a, b].map((x) =>
        x.breaker.execute(slowProbe).then(
          () => 'ok',
          (e: unknown) =>
            isOmsBreakerError(e) && e.code === 'ERR_OMS_BREAKER_OPEN' ? 'rejected' : String(e),
        ),
      ),
    );
    expect(outcomes.sort()).toEqual(['ok', 'rejected']);
    expect(a.probes() + b.probes()).toBe(1);
    await until(() => a.breaker.state === 'closed' && b.breaker.state === 'closed', {
      timeoutMs: 5000,
      what: 'both breakers to close after the probe',
    });
    expect([a.store.mode, b.store.mode]).toEqual(['shared', 'shared']);
  }, 90_000);
});
