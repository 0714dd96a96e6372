import { circuitBreaker, pipeline, retry, timeout } from '@oms/breaker';
import { redisBreakerStore } from '@oms/breaker/redis';
import * as cockatiel from 'cockatiel';
import { Redis } from 'ioredis';
import CircuitBreaker from 'opossum';
import { defineSuite } from '../src/harness.js';

// Every case wraps the same cheap async function, so what differs is the policy's own cost per call.
const work = async () => 1;

export default defineSuite({
  name: 'breaker',
  async setup(env) {
    const redis = new Redis(env.redisUrl);
    const store = redisBreakerStore({ redis, prefix: 'bench:breaker:' });
    await store.ready();
    const cb = cockatiel.circuitBreaker(cockatiel.handleAll, {
      halfOpenAfter: 10_000,
      breaker: new cockatiel.ConsecutiveBreaker(5),
    });
    // Like for like: our timeout() defaults to aggressive (the caller is released at the deadline).
    const ct = cockatiel.timeout(1_000, cockatiel.TimeoutStrategy.Aggressive);
    const cr = cockatiel.retry(cockatiel.handleAll, { maxAttempts: 3 });
    const cockatielWrap = cockatiel.wrap(
      cockatiel.retry(cockatiel.handleAll, { maxAttempts: 3 }),
      cockatiel.circuitBreaker(cockatiel.handleAll, {
        halfOpenAfter: 10_000,
        breaker: new cockatiel.ConsecutiveBreaker(5),
      }),
      cockatiel.timeout(1_000, cockatiel.TimeoutStrategy.Aggressive),
    );
    const opossum = new CircuitBreaker(work);
    const oms = circuitBreaker({ name: 'bench' });
    const omsShared = circuitBreaker({ name: 'bench-shared', store });
    const omsTimeout = timeout(1_000);
    const omsRetry = retry({ maxAttempts: 3 });
    const omsPipeline = pipeline(
      timeout(1_000),
      retry({ maxAttempts: 3 }),
      circuitBreaker({ name: 'bench-pipe' }),
    );
    return {
      redis,
      store,
      cb,
      ct,
      cr,
      cockatielWrap,
      opossum,
      oms,
      omsShared,
      omsTimeout,
      omsRetry,
      omsPipeline,
    };
  },
  cases: (c) => [
    { name: 'bare await', fn: () => work() },
    { name: 'oms breaker', fn: () => c.oms.execute(work) },
    { name: 'cockatiel breaker', fn: () => c.cb.execute(work) },
    { name: 'opossum breaker', fn: () => c.opossum.fire() },
    // redis: true records the server's commands per call: the closed path sends none (the store only writes on
    // a trip, a probe or a close, and reconciles once per syncIntervalMs), so the figure shows it stays at 0.
    { name: 'oms breaker + redis store', fn: () => c.omsShared.execute(work), redis: true },
    { name: 'oms timeout', fn: () => c.omsTimeout.execute(work) },
    { name: 'cockatiel timeout', fn: () => c.ct.execute(work) },
    { name: 'oms retry', fn: () => c.omsRetry.execute(work) },
    { name: 'cockatiel retry', fn: () => c.cr.execute(work) },
    { name: 'oms pipeline(timeout, retry, breaker)', fn: () => c.omsPipeline.execute(work) },
    { name: 'cockatiel wrap(retry, breaker, timeout)', fn: () => c.cockatielWrap.execute(work) },
  ],
  ratios: [
    {
      name: 'breaker overhead vs cockatiel',
      numerator: 'oms breaker',
      denominator: 'cockatiel breaker',
      subtract: 'bare await',
      goal: '<= 0.8',
    },
    {
      name: 'breaker overhead vs opossum',
      numerator: 'oms breaker',
      denominator: 'opossum breaker',
      subtract: 'bare await',
    },
    {
      name: 'pipeline overhead vs cockatiel wrap',
      numerator: 'oms pipeline(timeout, retry, breaker)',
      denominator: 'cockatiel wrap(retry, breaker, timeout)',
      subtract: 'bare await',
      goal: '<= 0.2',
    },
    {
      name: 'timeout overhead vs cockatiel',
      numerator: 'oms timeout',
      denominator: 'cockatiel timeout',
      subtract: 'bare await',
    },
    {
      name: 'redis store on the closed hot path (time vs local breaker)',
      numerator: 'oms breaker + redis store',
      denominator: 'oms breaker',
      goal: '<= 1.1',
    },
  ],
  async teardown(c) {
    await c.omsShared.close();
    await c.store.close();
    await c.omsPipeline.close();
    await c.omsTimeout.close();
    c.opossum.shutdown();
    c.redis.disconnect();
  },
});
