import { fakeClock } from '@oms/testkit';
import { describe, expect, it } from 'vitest';
import {
  type CheckRegistration,
  checks,
  type HealthCheck,
  type HealthTransition,
  healthRegistry,
  isOmsHealthError,
  OmsHealthError,
} from '../src/index.js';
import { expectHealthJson } from './helpers.js';

const make = (clock = fakeClock()) => ({
  clock,
  registry: healthRegistry({
    service: 'orders',
    version: '1.4.0',
    releaseId: '1.4.0-abc123',
    description: 'order service',
    clock,
    processChecks: false,
  }),
});

const reg = (
  over: Partial<CheckRegistration> & Pick<CheckRegistration, 'name' | 'check'>,
): CheckRegistration => ({
  kinds: ['readiness'],
  critical: true,
  timeoutMs: 100,
  ...over,
});

const never: HealthCheck = () => new Promise(() => {});

describe('report()', () => {
  it('passes with every check passing and serves a valid health+json body', async () => {
    const { registry } = make();
    registry.register(
      reg({
        name: 'db:responseTime',
        check: () => ({ status: 'pass', observedValue: 3, observedUnit: 'ms' }),
      }),
    );
    const r = await registry.report('readiness');
    expect(r.status).toBe('pass');
    expect(r.httpStatus).toBe(200);
    expect(r.body).toMatchObject({
      status: 'pass',
      version: '1.4.0',
      releaseId: '1.4.0-abc123',
      serviceId: 'orders',
      description: 'order service',
      checks: {
        'db:responseTime': [
          { status: 'pass', observedValue: 3, observedUnit: 'ms', componentType: 'component' },
        ],
      },
    });
    expect(r.body.checks['db:responseTime']?.[0]?.time).toBe(new Date(1_700_000_000_000).toISOString());
    expect(r.body.output).toBeUndefined();
    expectHealthJson(r.body);
  });

  it('fails (503) on a failing critical check and only warns (200) on a failing non-critical one', async () => {
    const { registry } = make();
    registry.register(
      reg({ name: 'cache:responseTime', critical: false, check: () => ({ status: 'fail', output: 'down' }) }),
    );
    const warn = await registry.report('readiness');
    expect([warn.status, warn.httpStatus]).toEqual(['warn', 200]);
    expect(warn.body.output).toContain('cache:responseTime: down');
    expectHealthJson(warn.body);

    registry.register(reg({ name: 'db:responseTime', check: () => ({ status: 'fail', output: 'refused' }) }));
    const fail = await registry.report('readiness');
    expect([fail.status, fail.httpStatus]).toEqual(['fail', 503]);
    expect(fail.body.checks['db:responseTime']?.[0]).toMatchObject({ status: 'fail', output: 'refused' });
    expectHealthJson(fail.body);
  });

  it('a warning check makes the report warn with HTTP 200', async () => {
    const { registry } = make();
    registry.register(reg({ name: 'db:responseTime', check: () => ({ status: 'warn', output: 'slow' }) }));
    const r = await registry.report('readiness');
    expect([r.status, r.httpStatus]).toEqual(['warn', 200]);
    expectHealthJson(r.body);
  });

  it('selects checks by kind; all reports every check', async () => {
    const { registry } = make();
    registry.register(reg({ name: 'loop:delay', kinds: ['liveness'], check: () => ({}) }));
    registry.register(
      reg({ name: 'db:responseTime', kinds: ['readiness', 'startup'], check: () => ({ status: 'fail' }) }),
    );
    expect(Object.keys((await registry.report('liveness')).body.checks)).toEqual(['loop:delay']);
    expect(Object.keys((await registry.report('readiness')).body.checks)).toEqual(['db:responseTime']);
    const all = await registry.report('all');
    expect(Object.keys(all.body.checks).sort()).toEqual(['db:responseTime', 'loop:delay']);
    expect((await registry.report('liveness')).status).toBe('pass');
    expectHealthJson(all.body);
  });

  it('defaults observedValue to the run duration in ms', async () => {
    const { registry, clock } = make();
    registry.register(
      reg({
        name: 'db:responseTime',
        check: () => new Promise((r) => clock.setTimeout(() => r({ status: 'pass' }), 40)),
      }),
    );
    const p = registry.report('readiness');
    await clock.advanceAsync(40);
    const r = await p;
    expect(r.body.checks['db:responseTime']?.[0]).toMatchObject({ observedValue: 40, observedUnit: 'ms' });
  });

  it('redacts connection strings and passwords from outputs, history and events', async () => {
    const { registry } = make();
    const seen: HealthTransition[] = [];
    registry.on('change', (e) => seen.push(e));
    registry.register(
      reg({
        name: 'db:responseTime',
        check: () => {
          throw new Error('connect to postgres://app:hunter2@db:5432/orders failed; host=db password=s3cret');
        },
      }),
    );
    const r = await registry.report('readiness');
    const text = JSON.stringify([r.body, registry.history('db:responseTime'), seen]);
    expect(text).not.toContain('hunter2');
    expect(text).not.toContain('s3cret');
    expect(r.body.checks['db:responseTime']?.[0]?.output).toContain('postgres://app:***@db:5432/orders');
    expectHealthJson(r.body);
  });

  it('rejects with a typed error when its signal aborts', async () => {
    const { registry } = make();
    registry.register(reg({ name: 'db:responseTime', check: never }));
    const ac = new AbortController();
    const p = registry.report('readiness', { signal: ac.signal });
    ac.abort();
    await expect(p).rejects.toMatchObject({ code: 'ERR_OMS_HEALTH_ABORTED' });
  });
});

describe('timeouts', () => {
  it('a check that hangs yields fail with "timed out after N ms" at exactly timeoutMs', async () => {
    const { registry, clock } = make();
    registry.register(reg({ name: 'db:responseTime', check: never, timeoutMs: 250 }));
    let done = false;
    const p = registry.report('readiness').finally(() => {
      done = true;
    });
    await clock.advanceAsync(249);
    expect(done).toBe(false);
    await clock.advanceAsync(1);
    const r = await p;
    expect(r.status).toBe('fail');
    expect(r.body.checks['db:responseTime']?.[0]?.output).toBe('timed out after 250 ms');
    expectHealthJson(r.body);
  });

  it('aborts the check signal on timeout', async () => {
    const { registry, clock } = make();
    let signal: AbortSignal | undefined;
    registry.register(
      reg({
        name: 'db:responseTime',
        check: (ctx) => {
          signal = ctx.signal;
          return new Promise(() => {});
        },
      }),
    );
    const p = registry.report('readiness');
    await clock.advanceAsync(100);
    await p;
    expect(signal?.aborted).toBe(true);
  });

  it('never starts a second run while a timed-out run is still pending', async () => {
    const { registry, clock } = make();
    let calls = 0;
    registry.register(
      reg({
        name: 'db:responseTime',
        check: () => {
          calls++;
          return new Promise(() => {});
        },
      }),
    );
    for (let i = 0; i < 5; i++) {
      const p = registry.report('readiness');
      await clock.advanceAsync(100);
      const r = await p;
      expect(r.status).toBe('fail');
      expect(r.body.checks['db:responseTime']?.[0]?.output).toMatch(/^timed out after 100 ms/);
    }
    expect(calls).toBe(1);
    expect(registry.checks()[0]?.running).toBe(true);
  });
});

describe('close()', () => {
  it('settles a pending run, clears every timer and stops polling', async () => {
    const { registry, clock } = make();
    let aborted = false;
    registry.register(
      reg({
        name: 'db:responseTime',
        timeoutMs: 10_000,
        check: ({ signal }) => {
          signal.addEventListener('abort', () => {
            aborted = true;
          });
          return new Promise(() => {}); // ignores its signal
        },
      }),
    );
    registry.register(reg({ name: 'cache:responseTime', intervalMs: 1000, check: () => ({}) }));
    await clock.advanceAsync(0);
    const pending = registry.report('readiness');
    await clock.advanceAsync(10);
    await registry.close();
    const r = await pending;
    expect(r.status).toBe('fail');
    expect(r.body.checks['db:responseTime']?.[0]?.output).toBe(
      'the health registry was closed during this run',
    );
    expect(aborted).toBe(true);
    expect(clock.pending()).toBe(0);
  });
});

describe('single-flight', () => {
  it('100 concurrent report() calls run the check exactly once', async () => {
    const { registry, clock } = make();
    let calls = 0;
    registry.register(
      reg({
        name: 'db:responseTime',
        timeoutMs: 1000,
        check: () => {
          calls++;
          return new Promise((r) => clock.setTimeout(() => r({ status: 'pass' }), 50));
        },
      }),
    );
    const reports = Array.from({ length: 100 }, () => registry.report('readiness'));
    await clock.advanceAsync(50);
    const results = await Promise.all(reports);
    expect(calls).toBe(1);
    expect(results.every((r) => r.status === 'pass')).toBe(true);
    // a later report starts a fresh run
    const next = registry.report('readiness');
    await clock.advanceAsync(50);
    await next;
    expect(calls).toBe(2);
  });
});

describe('background polling', () => {
  it('polls every intervalMs and report() serves the cached result without running the check', async () => {
    const { registry, clock } = make();
    let calls = 0;
    let next: 'pass' | 'fail' = 'pass';
    registry.register(
      reg({
        name: 'db:responseTime',
        intervalMs: 1000,
        check: () => {
          calls++;
          return { status: next };
        },
      }),
    );
    await clock.advanceAsync(0);
    expect(calls).toBe(1);
    for (let i = 0; i < 10; i++) await registry.report('readiness');
    expect(calls).toBe(1);
    next = 'fail';
    await clock.advanceAsync(1000);
    expect(calls).toBe(2);
    expect((await registry.report('readiness')).status).toBe('fail');
    await clock.advanceAsync(3000);
    expect(calls).toBe(5);
    await registry.close();
    await clock.advanceAsync(5000);
    expect(calls).toBe(5);
    expect(clock.pending()).toBe(0);
  });

  it('a result older than staleAfterMs degrades to fail, so a stuck poller never reads healthy', async () => {
    const { registry, clock } = make();
    let stuck = false;
    registry.register(
      reg({
        name: 'db:responseTime',
        intervalMs: 1000,
        staleAfterMs: 2500,
        timeoutMs: 10_000,
        check: () => (stuck ? new Promise(() => {}) : { status: 'pass' }),
      }),
    );
    await clock.advanceAsync(0);
    expect((await registry.report('readiness')).status).toBe('pass');
    stuck = true; // the next poll hangs for far longer than staleAfterMs
    await clock.advanceAsync(2500);
    expect((await registry.report('readiness')).status).toBe('pass');
    await clock.advanceAsync(1);
    const r = await registry.report('readiness');
    expect(r.status).toBe('fail');
    expect(r.body.checks['db:responseTime']?.[0]?.output).toMatch(/^stale: the last result is 2501 ms old/);
    expectHealthJson(r.body);
    expect(registry.history('db:responseTime').map((t) => t.to)).toEqual(['pass', 'fail']);
  });

  it('report() before the first poll finishes waits for that run instead of starting another', async () => {
    const { registry, clock } = make();
    let calls = 0;
    registry.register(
      reg({
        name: 'db:responseTime',
        intervalMs: 1000,
        check: () => {
          calls++;
          return new Promise((r) => clock.setTimeout(() => r({}), 30));
        },
      }),
    );
    const p = registry.report('readiness');
    await clock.advanceAsync(30);
    expect((await p).status).toBe('pass');
    expect(calls).toBe(1);
  });
});

describe('startup gating', () => {
  it('passes once every startup check has passed once, then stays passed', async () => {
    const { registry } = make();
    let migrations: 'pass' | 'fail' = 'fail';
    let cache: 'pass' | 'fail' = 'fail';
    registry.register(
      reg({ name: 'migrations:applied', kinds: ['startup'], check: () => ({ status: migrations }) }),
    );
    registry.register(
      reg({ name: 'cache:warm', kinds: ['startup', 'readiness'], check: () => ({ status: cache }) }),
    );
    expect(registry.started).toBe(false);
    expect((await registry.report('startup')).status).toBe('fail');
    migrations = 'pass';
    expect((await registry.report('startup')).status).toBe('fail');
    migrations = 'fail'; // passed once already: still counts
    cache = 'pass';
    const r = await registry.report('startup');
    expect(r.status).toBe('pass');
    expect(registry.started).toBe(true);
    expectHealthJson(r.body);
    cache = 'fail';
    expect((await registry.report('startup')).status).toBe('pass');
    expect((await registry.report('readiness')).status).toBe('fail');
  });

  it('a non-critical startup check that has not passed yet keeps it at warn (200), not pass', async () => {
    const { registry } = make();
    let warmed: 'pass' | 'fail' = 'fail';
    registry.register(reg({ name: 'migrations:applied', kinds: ['startup'], check: () => ({}) }));
    registry.register(
      reg({ name: 'cache:warm', kinds: ['startup'], critical: false, check: () => ({ status: warmed }) }),
    );
    const early = await registry.report('startup');
    expect([early.status, early.httpStatus]).toEqual(['warn', 200]);
    expect(early.body.output).toContain('cache:warm');
    expect(registry.started).toBe(false);
    warmed = 'pass';
    expect((await registry.report('startup')).status).toBe('pass');
    expect(registry.started).toBe(true);
    warmed = 'fail';
    expect((await registry.report('startup')).status).toBe('pass');
  });

  it('registering another startup check re-opens the gate until it has passed once', async () => {
    const { registry } = make();
    registry.register(reg({ name: 'migrations:applied', kinds: ['startup'], check: () => ({}) }));
    expect((await registry.report('startup')).status).toBe('pass');
    registry.register(reg({ name: 'cache:warm', kinds: ['startup'], check: () => ({ status: 'fail' }) }));
    expect(registry.started).toBe(false);
    expect((await registry.report('startup')).status).toBe('fail');
  });

  it('does not run startup checks again once started', async () => {
    const { registry } = make();
    let calls = 0;
    registry.register(
      reg({
        name: 'migrations:applied',
        kinds: ['startup'],
        check: () => {
          calls++;
          return {};
        },
      }),
    );
    await registry.report('startup');
    await registry.report('startup');
    expect(calls).toBe(1);
  });

  it('gates on checks fed by background polling too', async () => {
    const { registry, clock } = make();
    let ok = false;
    registry.register(
      reg({
        name: 'db:responseTime',
        kinds: ['startup'],
        intervalMs: 500,
        check: () => ({ status: ok ? 'pass' : 'fail' }),
      }),
    );
    await clock.advanceAsync(0);
    expect((await registry.report('startup')).status).toBe('fail');
    ok = true;
    await clock.advanceAsync(500);
    expect((await registry.report('startup')).status).toBe('pass');
  });
});

describe('history and change events', () => {
  it('records transitions with time and how long the previous state lasted', async () => {
    const { registry, clock } = make();
    const events: HealthTransition[] = [];
    const off = registry.on('change', (e) => events.push(e));
    let status: 'pass' | 'fail' = 'pass';
    registry.register(reg({ name: 'db:responseTime', check: () => ({ status }) }));
    await registry.report('readiness');
    await clock.advanceAsync(1000);
    await registry.report('readiness'); // same status: no transition
    status = 'fail';
    await clock.advanceAsync(500);
    await registry.report('readiness');
    const h = registry.history('db:responseTime');
    expect(h.map((t) => [t.from, t.to, t.durationMs])).toEqual([
      ['unknown', 'pass', 0],
      ['pass', 'fail', 1500],
    ]);
    expect(h[1]?.time).toBe(1_700_000_000_000 + 1500);
    expect(events).toEqual(h);
    off();
    status = 'pass';
    await registry.report('readiness');
    expect(events).toHaveLength(2);
  });

  it('keeps a bounded ring of historySize transitions', async () => {
    const clock = fakeClock();
    const registry = healthRegistry({
      service: 's',
      version: '1',
      clock,
      historySize: 3,
      processChecks: false,
    });
    let i = 0;
    registry.register(reg({ name: 'x:y', check: () => ({ status: i++ % 2 ? 'fail' : 'pass' }) }));
    for (let k = 0; k < 10; k++) await registry.report('readiness');
    const h = registry.history('x:y');
    expect(h).toHaveLength(3);
    expect(h.map((t) => t.to)).toEqual(['fail', 'pass', 'fail']);
  });

  it('a throwing listener breaks neither the report nor other listeners', async () => {
    const { registry } = make();
    let seen = 0;
    registry.on('change', () => {
      throw new Error('listener bug');
    });
    registry.on('change', () => seen++);
    registry.register(reg({ name: 'db:responseTime', check: () => ({}) }));
    expect((await registry.report('readiness')).status).toBe('pass');
    expect(seen).toBe(1);
  });

  it('the same listener subscribed twice is called twice, and each unsubscribe removes exactly one', async () => {
    const { registry } = make();
    const calls: string[] = [];
    const fn = (e: HealthTransition) => calls.push(e.to);
    const offFirst = registry.on('change', fn);
    const offSecond = registry.on('change', fn);
    let status: 'pass' | 'fail' = 'pass';
    registry.register(reg({ name: 'db:responseTime', check: () => ({ status }) }));
    await registry.report('readiness');
    expect(calls).toEqual(['pass', 'pass']);
    offFirst();
    offFirst(); // a second call of the same unsubscribe removes nothing more
    status = 'fail';
    await registry.report('readiness');
    expect(calls).toEqual(['pass', 'pass', 'fail']);
    offSecond();
    status = 'pass';
    await registry.report('readiness');
    expect(calls).toEqual(['pass', 'pass', 'fail']);
  });

  it('history() of an unknown check is a typed error', () => {
    const { registry } = make();
    expect(() => registry.history('nope:x')).toThrow(
      expect.objectContaining({ code: 'ERR_OMS_HEALTH_UNKNOWN_CHECK' }),
    );
  });
});

describe('shutdown state', () => {
  it('readiness fails at once after beginShutdown(); liveness keeps passing', async () => {
    const { registry } = make();
    let calls = 0;
    registry.register(
      reg({
        name: 'db:responseTime',
        check: () => {
          calls++;
          return {};
        },
      }),
    );
    registry.register(reg({ name: 'loop:delay', kinds: ['liveness'], check: () => ({}) }));
    await registry.report('readiness');
    registry.beginShutdown();
    const r = await registry.report('readiness');
    expect([r.status, r.httpStatus]).toEqual(['fail', 503]);
    expect(r.body.checks['process:shutdown']?.[0]?.status).toBe('fail');
    expect(calls).toBe(1); // draining does not hit dependencies
    expectHealthJson(r.body);
    expect((await registry.report('liveness')).status).toBe('pass');
    expect(registry.shuttingDown).toBe(true);
  });
});

describe('bad input', () => {
  const code = (fn: () => unknown) => {
    try {
      fn();
    } catch (e) {
      expect(e).toBeInstanceOf(OmsHealthError);
      expect(isOmsHealthError(e)).toBe(true);
      return (e as OmsHealthError).code;
    }
    throw new Error('expected a throw');
  };

  it('checks options with the shared vocabulary: a clock needs all three methods, historySize is an integer', () => {
    const base = { service: 's', version: '1', processChecks: false };
    const halfClock = { now: () => 0, setTimeout: () => 0 };
    expect(() => healthRegistry({ ...base, clock: halfClock as never })).toThrow(
      new OmsHealthError(
        'ERR_OMS_HEALTH_INVALID_OPTION',
        'clock must be an object with now(), setTimeout() and clearTimeout()',
      ),
    );
    expect(() => healthRegistry({ ...base, historySize: 1.5 })).toThrow(
      'historySize must be an integer >= 1 (got 1.5)',
    );
    expect(() => checks.memory({ warnRatio: 2 })).toThrow(
      'checks.memory: warnRatio must be a number in [0, 1] (got 2)',
    );
  });

  it('rejects duplicate names', () => {
    const { registry } = make();
    registry.register(reg({ name: 'db:responseTime', check: () => ({}) }));
    expect(code(() => registry.register(reg({ name: 'db:responseTime', check: () => ({}) })))).toBe(
      'ERR_OMS_HEALTH_DUPLICATE_CHECK',
    );
  });

  it.each([0, -1, Number.NaN, Number.POSITIVE_INFINITY, '100'])('rejects timeoutMs %s', (t) => {
    const { registry } = make();
    expect(
      code(() => registry.register(reg({ name: 'db:x', check: () => ({}), timeoutMs: t as number }))),
    ).toBe('ERR_OMS_HEALTH_INVALID_OPTION');
  });

  it.each([
    ['a name without a measurement', { name: 'postgres' }],
    ['a name with two colons', { name: 'a:b:c' }],
    ['empty kinds', { kinds: [] }],
    ['an unknown kind', { kinds: ['ready'] }],
    ['a non-boolean critical', { critical: 'yes' }],
    ['intervalMs 0', { intervalMs: 0 }],
    ['staleAfterMs without intervalMs', { staleAfterMs: 100 }],
    ['staleAfterMs <= intervalMs', { intervalMs: 100, staleAfterMs: 100 }],
    ['a non-function check', { check: 'select 1' }],
  ])('rejects %s', (_what, over) => {
    const { registry } = make();
    const bad = { ...reg({ name: 'db:x', check: () => ({}) }), ...over } as CheckRegistration;
    expect(code(() => registry.register(bad))).toBe('ERR_OMS_HEALTH_INVALID_OPTION');
  });

  it('validates registry options at construction', () => {
    expect(code(() => healthRegistry({ service: '', version: '1' }))).toBe('ERR_OMS_HEALTH_INVALID_OPTION');
    expect(code(() => healthRegistry({ service: 's', version: undefined as unknown as string }))).toBe(
      'ERR_OMS_HEALTH_INVALID_OPTION',
    );
    expect(code(() => healthRegistry({ service: 's', version: '1', historySize: 0 }))).toBe(
      'ERR_OMS_HEALTH_INVALID_OPTION',
    );
  });

  it.each([
    [
      'throws synchronously',
      () => {
        throw new TypeError('boom');
      },
      'boom',
    ],
    ['returns undefined', () => undefined, 'check returned undefined; expected an object'],
    ['returns a string', () => 'ok', 'check returned string'],
    ['resolves null', async () => null, 'check returned null'],
    ['returns an unknown status', () => ({ status: 'healthy' }), 'check returned status "healthy"'],
    [
      'rejects with a non-Error',
      () => Promise.reject('db is gone'),
      'check rejected with a non-Error value (string): db is gone',
    ],
    [
      'rejects with undefined',
      () => Promise.reject(undefined),
      'check rejected with a non-Error value (undefined)',
    ],
    ['rejects with an object', () => Promise.reject({ code: 'ECONNREFUSED' }), '{"code":"ECONNREFUSED"}'],
    ['returns a non-string output', () => ({ output: 42 }), 'output of type number; expected a string'],
    [
      'returns a bigint observedValue',
      () => ({ observedValue: 10n }),
      'observedValue that is not JSON (bigint)',
    ],
    ['returns a numeric observedUnit', () => ({ observedUnit: 5 }), 'observedUnit of type number'],
    ['returns bad affectedEndpoints', () => ({ affectedEndpoints: '/x' }), 'affectedEndpoints that is not'],
    ['returns details that are not an object', () => ({ details: [1] }), 'details that is not a JSON object'],
  ])('a check that %s yields fail with a useful output, never an exception', async (_what, check, output) => {
    const { registry } = make();
    registry.register(reg({ name: 'db:responseTime', check: check as unknown as HealthCheck }));
    const r = await registry.report('readiness');
    expect(r.status).toBe('fail');
    expect(r.body.checks['db:responseTime']?.[0]?.output).toContain(output);
    expectHealthJson(r.body);
    // the serialised body is what probes get: it must not throw either
    expect(JSON.parse((await registry.handler('readiness')).body).status).toBe('fail');
  });

  it('report() with an unknown kind and after close() are typed errors', async () => {
    const { registry } = make();
    await expect(registry.report('ready' as 'readiness')).rejects.toMatchObject({
      code: 'ERR_OMS_HEALTH_INVALID_OPTION',
    });
    await registry.close();
    await expect(registry.report('readiness')).rejects.toMatchObject({ code: 'ERR_OMS_HEALTH_CLOSED' });
  });
});

describe('process checks', () => {
  it('registers event-loop and memory liveness checks by default, and nothing for readiness', async () => {
    const registry = healthRegistry({ service: 's', version: '1' });
    const live = await registry.report('liveness');
    expect(Object.keys(live.body.checks).sort()).toEqual(['eventloop:delay', 'memory:utilization']);
    expect(live.status).toBe('pass');
    expect(live.body.checks['memory:utilization']?.[0]).toMatchObject({
      observedUnit: 'percent',
      componentType: 'system',
    });
    expectHealthJson(live.body);
    expect(Object.keys((await registry.report('readiness')).body.checks)).toEqual([]);
    await registry.close();
  });
});
