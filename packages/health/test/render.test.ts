import { describe, expect, it } from 'vitest';
import { assemble, type CheckInfo, type ReportContext, SHUTDOWN_KEY, toEntry } from '../src/render.js';
import type { CheckResult } from '../src/types.js';
import { healthSchema } from './helpers.js';
import { validate } from './json-schema.js';

const T = Date.UTC(2026, 0, 2, 3, 4, 5, 678);
const ctx: ReportContext = {
  service: 'orders',
  version: '1.4.0',
  started: false,
  shutdownAt: undefined,
  now: T,
};

const result = (over: Partial<CheckResult> = {}): CheckResult => ({
  name: 'postgres:responseTime',
  status: 'pass',
  observedValue: 3,
  observedUnit: 'ms',
  componentType: 'datastore',
  time: T,
  durationMs: 3,
  timedOut: false,
  ...over,
});
const info = (name: string, over: Partial<CheckInfo> = {}): CheckInfo => ({
  name,
  critical: true,
  componentType: 'datastore',
  passedOnce: false,
  ...over,
});

describe('toEntry (one result as a health+json check entry)', () => {
  it('carries the reading and an ISO time, and no output while passing', () => {
    const e = toEntry(result({ output: 'fine', affectedEndpoints: ['/orders'], componentId: 'pg-1' }));
    expect(e).toEqual({
      componentType: 'datastore',
      componentId: 'pg-1',
      observedValue: 3,
      observedUnit: 'ms',
      status: 'pass',
      time: '2026-01-02T03:04:05.678Z',
    });
    expect(validate(healthSchema, { status: 'pass', checks: { 'postgres:responseTime': [e] } })).toEqual([]);
  });

  it('adds output and affected endpoints when not passing', () => {
    const e = toEntry(result({ status: 'warn', output: 'slow', affectedEndpoints: ['/orders'] }));
    expect(e.output).toBe('slow');
    expect(e.affectedEndpoints).toEqual(['/orders']);
  });

  it("adds details as keys of their own but never overwrites the draft's keys", () => {
    const e = toEntry(result({ details: { pool: 'primary', status: 'fail', time: 'never', links: 'x' } }));
    expect(e.pool).toBe('primary');
    expect(e.status).toBe('pass');
    expect(e.time).toBe('2026-01-02T03:04:05.678Z');
    expect('links' in e).toBe(false);
  });
});

describe('assemble (a report from its checks)', () => {
  it('is pass and HTTP 200 with no output when every check passes, and fits the schema', () => {
    const r = assemble('readiness', [{ check: info('postgres:responseTime'), result: result() }], {
      ...ctx,
      releaseId: 'abc',
      description: 'orders',
    });
    expect(r.status).toBe('pass');
    expect(r.httpStatus).toBe(200);
    expect(r.body).toEqual({
      status: 'pass',
      version: '1.4.0',
      releaseId: 'abc',
      serviceId: 'orders',
      description: 'orders',
      checks: { 'postgres:responseTime': [toEntry(result())] },
    });
    expect(validate(healthSchema, r.body)).toEqual([]);
  });

  it('fails with 503 on a failing critical check, and only warns on a non-critical one', () => {
    const failing = result({ name: 'redis:responseTime', status: 'fail', output: 'refused' });
    const critical = assemble('readiness', [{ check: info('redis:responseTime'), result: failing }], ctx);
    expect([critical.status, critical.httpStatus]).toEqual(['fail', 503]);
    expect(critical.body.output).toBe('redis:responseTime: refused');
    const optional = assemble(
      'readiness',
      [{ check: info('redis:responseTime', { critical: false }), result: failing }],
      ctx,
    );
    expect([optional.status, optional.httpStatus]).toEqual(['warn', 200]);
    expect(validate(healthSchema, optional.body)).toEqual([]);
  });

  it('reports a check that has not run yet as a failing entry at the report time', () => {
    const r = assemble(
      'all',
      [{ check: info('cache:responseTime', { critical: false }), result: undefined }],
      ctx,
    );
    expect(r.body.checks['cache:responseTime']).toEqual([
      {
        componentType: 'datastore',
        observedValue: null,
        observedUnit: '',
        status: 'fail',
        time: '2026-01-02T03:04:05.678Z',
        output: 'not run yet',
      },
    ]);
    expect(r.status).toBe('warn');
    expect(validate(healthSchema, r.body)).toEqual([]);
  });

  it('passes startup on "passed once" and latches it once started', () => {
    const failing = result({ status: 'fail', output: 'down' });
    const once = assemble(
      'startup',
      [{ check: info('postgres:responseTime', { passedOnce: true }), result: failing }],
      ctx,
    );
    expect(once.status).toBe('pass');
    const never = assemble('startup', [{ check: info('postgres:responseTime'), result: failing }], ctx);
    expect(never.status).toBe('fail');
    const latched = assemble('startup', [{ check: info('postgres:responseTime'), result: failing }], {
      ...ctx,
      started: true,
    });
    expect(latched.status).toBe('pass');
    expect(latched.body.checks['postgres:responseTime']?.[0]?.status).toBe('fail');
  });

  it('fails readiness and all, not liveness, while shutting down, with an entry saying so first', () => {
    const shutting = { ...ctx, shutdownAt: T - 250 };
    const checks = [{ check: info('postgres:responseTime'), result: result() }];
    const r = assemble('readiness', checks, shutting);
    expect([r.status, r.httpStatus]).toEqual(['fail', 503]);
    expect(r.body.checks[SHUTDOWN_KEY]?.[0]).toMatchObject({
      observedValue: 250,
      observedUnit: 'ms',
      status: 'fail',
    });
    expect(r.body.output).toBe(`${SHUTDOWN_KEY}: shutting down`);
    expect(validate(healthSchema, r.body)).toEqual([]);
    expect(assemble('all', checks, shutting).status).toBe('fail');
    const live = assemble('liveness', checks, shutting);
    expect(live.status).toBe('pass');
    expect(SHUTDOWN_KEY in live.body.checks).toBe(false);
  });
});
