import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fakeClock } from '@oms/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checks, type HealthCheck, healthRegistry } from '../src/index.js';
import { expectHealthJson } from './helpers.js';

const ctx = () => ({ signal: new AbortController().signal });
const run = async (c: HealthCheck, signal = new AbortController().signal) => c({ signal });

describe('checks.memory', () => {
  it('reports heap utilisation in percent with heap and rss bytes', async () => {
    const r = await run(checks.memory());
    expect(r).toMatchObject({ status: 'pass', observedUnit: 'percent', componentType: 'system' });
    expect(r.observedValue).toBeGreaterThan(0);
    expect(r.details?.heapLimitBytes).toBeGreaterThan(0);
    expect(r.details?.rssBytes).toBeGreaterThan(0);
  });

  it('fails above failRatio and when rss exceeds maxRssBytes', async () => {
    expect((await run(checks.memory({ warnRatio: 0, failRatio: 0 }))).status).toBe('fail');
    expect((await run(checks.memory({ warnRatio: 0, failRatio: 1 }))).status).toBe('warn');
    const rss = await run(checks.memory({ maxRssBytes: 1 }));
    expect(rss).toMatchObject({ status: 'fail' });
    expect(rss.output).toMatch(/rss \d+ bytes exceeds maxRssBytes 1/);
  });

  it('rejects bad thresholds', () => {
    expect(() => checks.memory({ warnRatio: 2 })).toThrow(
      expect.objectContaining({ code: 'ERR_OMS_HEALTH_INVALID_OPTION' }),
    );
    expect(() => checks.memory({ warnRatio: 0.9, failRatio: 0.5 })).toThrow(/must not exceed/);
  });
});

describe('checks.eventLoopDelay', () => {
  it('reports the p99 delay in ms and fails when the loop was blocked', async () => {
    const c = checks.eventLoopDelay({ warnMs: 50, failMs: 150, resolutionMs: 5 });
    try {
      await run(c); // starts the monitor
      await new Promise((r) => setTimeout(r, 30));
      const calm = await run(c);
      expect(calm.observedUnit).toBe('ms');
      expect(typeof calm.observedValue).toBe('number');
      setTimeout(() => {
        const deadline = Date.now() + 400;
        while (Date.now() < deadline) {
          // block the loop from inside a timer, as a CPU-bound handler would
        }
      }, 10);
      await new Promise((r) => setTimeout(r, 500));
      const blocked = await run(c);
      expect(blocked.status).toBe('fail');
      expect(blocked.observedValue).toBeGreaterThan(150);
    } finally {
      c.close?.();
    }
  });
});

describe('checks.disk', () => {
  it('reports free bytes on the path with ratio and total', async () => {
    const r = await run(checks.disk({ path: '/' }));
    expect(r).toMatchObject({ observedUnit: 'bytes', componentType: 'system' });
    expect(r.observedValue).toBeGreaterThan(0);
    expect(r.details?.totalBytes).toBeGreaterThan(0);
  });

  it('fails below minFreeBytes and warns below warnFreeRatio', async () => {
    const fail = await run(checks.disk({ path: '/', minFreeBytes: Number.MAX_SAFE_INTEGER }));
    expect(fail.status).toBe('fail');
    expect(fail.output).toMatch(/bytes free on \/ \(minFreeBytes/);
    expect((await run(checks.disk({ path: '/', minFreeRatio: 0, warnFreeRatio: 1 }))).status).toBe('warn');
  });

  it('a missing path fails the check through the registry', async () => {
    const registry = healthRegistry({ service: 's', version: '1', processChecks: false });
    registry.register({
      name: 'disk:free',
      check: checks.disk({ path: '/no/such/dir' }),
      kinds: ['readiness'],
      critical: true,
      timeoutMs: 1000,
    });
    const r = await registry.report('readiness');
    expect(r.status).toBe('fail');
    expect(r.body.checks['disk:free']?.[0]?.output).toContain('ENOENT');
    expectHealthJson(r.body);
  });
});

describe('checks.postgres and checks.redis (structural)', () => {
  it('runs select 1 and reports latency; grades slow answers', async () => {
    const seen: string[] = [];
    const db = { query: async (sql: string) => void seen.push(sql) };
    const r = await run(checks.postgres(db));
    expect(seen).toEqual(['select 1']);
    expect(r).toMatchObject({ status: 'pass', observedUnit: 'ms', componentType: 'datastore' });
    const slow = { query: () => new Promise((res) => setTimeout(res, 30)) };
    expect((await run(checks.postgres(slow, { warnMs: 5 }))).status).toBe('warn');
    expect((await run(checks.postgres(slow, { warnMs: 1, failMs: 5 }))).status).toBe('fail');
  });

  it('redis fails on an answer other than PONG', async () => {
    const r = await run(checks.redis({ ping: async () => 'LOADING' }));
    expect(r.status).toBe('fail');
    expect(r.output).toContain('"LOADING"');
  });

  it('a redis or postgres check that throws or times out still reports componentType datastore', async () => {
    const clock = fakeClock();
    const registry = healthRegistry({ service: 's', version: '1', clock, processChecks: false });
    const down = () => Promise.reject(new Error('connect ECONNREFUSED 127.0.0.1:6379'));
    const hangs = () => new Promise<never>(() => {});
    const cases = {
      'redis:down': checks.redis({ ping: down }),
      'redis:hangs': checks.redis({ ping: hangs }),
      'postgres:down': checks.postgres({ query: down }),
      'postgres:hangs': checks.postgres({ query: hangs }),
    };
    for (const [name, check] of Object.entries(cases)) {
      registry.register({ name, check, kinds: ['readiness'], critical: true, timeoutMs: 100 });
    }
    registry.register({
      name: 'cache:overridden',
      check: checks.redis({ ping: down }),
      kinds: ['readiness'],
      critical: true,
      timeoutMs: 100,
      componentType: 'urn:example:cache',
    });
    registry.register({
      name: 'disk:gone',
      check: checks.disk({ path: '/nonexistent/oms' }),
      kinds: ['readiness'],
      critical: false,
      timeoutMs: 100,
    });
    const p = registry.report('readiness');
    await clock.advanceAsync(100);
    const r = await p;
    const types = Object.fromEntries(
      Object.entries(r.body.checks).map(([name, [entry]]) => [
        name,
        `${entry?.status} ${entry?.componentType}`,
      ]),
    );
    expect(types).toEqual({
      'redis:down': 'fail datastore',
      'redis:hangs': 'fail datastore',
      'postgres:down': 'fail datastore',
      'postgres:hangs': 'fail datastore',
      'cache:overridden': 'fail urn:example:cache',
      'disk:gone': 'fail system',
    });
    expectHealthJson(r.body);
    await registry.close();
  });

  it('rejects clients without query/ping', () => {
    expect(() => checks.postgres({} as never)).toThrow(/query\(sql\)/);
    expect(() => checks.redis({} as never)).toThrow(/ping\(\)/);
  });
});

describe('checks.http', () => {
  let server: Server;
  let base: string;
  beforeAll(async () => {
    server = createServer((req, res) => {
      if (req.url === '/slow') {
        setTimeout(() => res.end('late'), 500);
        return;
      }
      res.statusCode = req.url === '/teapot' ? 418 : 200;
      res.end('ok');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  it('passes on the expected status and reports latency', async () => {
    const r = await checks.http({ url: `${base}/ok`, expectedStatus: 200 })(ctx());
    expect(r).toMatchObject({ status: 'pass', observedUnit: 'ms' });
    expect((await checks.http({ url: `${base}/teapot`, expectedStatus: [418] })(ctx())).status).toBe('pass');
  });

  it('fails on another status', async () => {
    const r = await checks.http({ url: `${base}/teapot` })(ctx());
    expect(r.status).toBe('fail');
    expect(r.output).toContain('answered 418, expected 2xx');
  });

  it('fails within its own timeout', async () => {
    const t0 = Date.now();
    const r = await checks.http({ url: `${base}/slow`, timeoutMs: 100 })(ctx());
    expect(r.status).toBe('fail');
    expect(r.output).toContain('no answer within 100 ms');
    expect(Date.now() - t0).toBeLessThan(450);
  });

  it('never shows URL credentials or query strings in its output', async () => {
    const url = new URL(`${base}/teapot?token=abc`);
    url.username = 'svc';
    url.password = 'hunter2';
    const r = await checks.http({ url, expectedStatus: 204 })(ctx());
    expect(r.status).toBe('fail');
    expect(r.output).not.toContain('hunter2');
    expect(r.output).not.toContain('abc');
  });

  it('rejects non-http urls', () => {
    expect(() => checks.http({ url: 'ftp://x' })).toThrow(/http\(s\)/);
  });
});
