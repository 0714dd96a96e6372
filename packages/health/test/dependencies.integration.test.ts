import { until, usePostgres, useRedis } from '@oms/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  checks,
  type HealthRegistry,
  type HealthStatus,
  type HealthTransition,
  healthRegistry,
} from '../src/index.js';
import { expectHealthJson, timerLag } from './helpers.js';

const pg = usePostgres({ dedicated: true });
const redis = useRedis({ dedicated: true });

const TIMEOUT_MS = 500;
const INTERVAL_MS = 500;

let registry: HealthRegistry;
const liveness: HealthTransition[] = [];
const liveStatuses = new Set<HealthStatus>();

beforeAll(async () => {
  registry = healthRegistry({ service: 'orders', version: '1.0.0', processChecks: false });
  // generous thresholds: the point is that dependency faults never reach liveness, not loop jitter on CI
  registry.register({
    name: 'eventloop:delay',
    check: checks.eventLoopDelay({ warnMs: 2000, failMs: 5000 }),
    kinds: ['liveness'],
    critical: true,
    timeoutMs: 1000,
  });
  registry.register({
    name: 'memory:utilization',
    check: checks.memory(),
    kinds: ['liveness'],
    critical: true,
    timeoutMs: 1000,
  });
  registry.on('change', (e) => {
    if (e.kinds.includes('liveness')) liveness.push(e);
  });
  const pool = pg.pool({ connectionTimeoutMillis: 300, max: 2 });
  registry.register({
    name: 'postgres:responseTime',
    check: checks.postgres(pool),
    kinds: ['readiness'],
    critical: true,
    timeoutMs: TIMEOUT_MS,
    intervalMs: INTERVAL_MS,
  });
  registry.register({
    name: 'redis:responseTime',
    check: checks.redis(redis.client({ maxRetriesPerRequest: 1, connectTimeout: 300 })),
    kinds: ['readiness'],
    critical: true,
    timeoutMs: TIMEOUT_MS,
    intervalMs: INTERVAL_MS,
  });
  await until(async () => (await registry.report('readiness')).status === 'pass', {
    timeoutMs: 10_000,
    what: 'readiness to pass',
  });
});

afterAll(async () => {
  await registry?.close();
});

const checkLiveness = async () => {
  const r = await registry.report('liveness');
  liveStatuses.add(r.status);
  expectHealthJson(r.body);
};

describe.each([
  ['postgres', 'postgres:responseTime', pg],
  ['redis', 'redis:responseTime', redis],
] as const)('%s goes away and comes back', (_label, name, server) => {
  it(`readiness fails within timeoutMs + intervalMs of a kill, passes after restart, history has both`, async () => {
    const before = registry.history(name).length;
    await server.kill();
    const t0 = Date.now();
    const lag = timerLag();
    const failed = await until(
      async () => {
        await checkLiveness();
        const r = await registry.report('readiness');
        return r.status === 'fail' ? r : undefined;
      },
      { timeoutMs: 10_000, what: `readiness to fail after killing ${name}` },
    );
    const elapsed = Date.now() - t0;
    lag.stop();
    // Worst case: a poll passed just before the kill, the next one starts intervalMs later and hangs until
    // timeoutMs; plus this test's 10 ms polling. Allow for the time this loaded machine did not run our
    // event loop, and nothing else.
    const bound = TIMEOUT_MS + INTERVAL_MS + 20 + lag.total();
    expect(
      elapsed,
      `readiness turned fail after ${elapsed} ms (event loop stalled ${lag.total()} ms)`,
    ).toBeLessThanOrEqual(bound);
    expect(failed.httpStatus).toBe(503);
    expect(failed.body.checks[name]?.[0]?.status).toBe('fail');
    expect(failed.body.checks[name]?.[0]?.output).toBeTruthy();
    expect(failed.body.checks[name]?.[0]?.componentType).toBe('datastore'); // down is still a datastore
    expect(JSON.stringify(failed.body)).not.toMatch(/:\/\/[^/\s]*:[^*][^@\s]*@/); // no credentials
    expectHealthJson(failed.body);

    await server.restart();
    const passed = await until(
      async () => {
        await checkLiveness();
        const r = await registry.report('readiness');
        return r.status === 'pass' ? r : undefined;
      },
      { timeoutMs: 15_000, what: `readiness to pass after restarting ${name}` },
    );
    expectHealthJson(passed.body);
    const transitions = registry
      .history(name)
      .slice(before)
      .map((t) => `${t.from}->${t.to}`);
    expect(transitions).toEqual(['pass->fail', 'fail->pass']);
    await checkLiveness();
  });
});

describe('liveness', () => {
  it('never changed while dependencies failed and recovered', () => {
    expect([...liveStatuses]).toEqual(['pass']);
    expect(liveness.map((t) => `${t.name}:${t.from}->${t.to}`).sort()).toEqual([
      'eventloop:delay:unknown->pass',
      'memory:utilization:unknown->pass',
    ]);
  });
});
