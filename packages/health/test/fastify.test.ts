import { existsSync } from 'node:fs';
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import { explainRun, runAlone } from '@oms/testkit';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { gracefulShutdown, healthPlugin } from '../src/fastify/index.js';
import {
  type HealthRegistry,
  type HealthServer,
  healthRegistry,
  healthServer,
  gracefulShutdown as nodeGracefulShutdown,
  type ShutdownPhase,
} from '../src/index.js';
import { expectHealthJson } from './helpers.js';

let registry: HealthRegistry;
let app: FastifyInstance | undefined;
let probes: HealthServer | undefined;
afterEach(async () => {
  await app?.close();
  await probes?.close();
  await registry?.close();
  app = probes = undefined;
});

let db: 'pass' | 'fail' = 'pass';
const makeRegistry = () => {
  db = 'pass';
  registry = healthRegistry({ service: 'orders', version: '2.0.0', processChecks: false });
  registry.register({
    name: 'loop:delay',
    check: () => ({}),
    kinds: ['liveness'],
    critical: true,
    timeoutMs: 100,
  });
  registry.register({
    name: 'db:responseTime',
    check: () => ({ status: db }),
    kinds: ['readiness', 'startup'],
    critical: true,
    timeoutMs: 100,
  });
  return registry;
};

const listen = async (a: FastifyInstance) => {
  app = a;
  await a.listen({ port: 0, host: '127.0.0.1' });
  const addr = a.server.address();
  if (!addr || typeof addr === 'string') throw new Error('not listening on TCP');
  return `http://127.0.0.1:${addr.port}`;
};

/** What a probe answered, with the headers a probe's answer is made of (not date or keep-alive). */
const probe = async (url: string, method = 'GET') => {
  const res = await fetch(url, { method });
  const text = await res.text();
  return {
    status: res.status,
    headers: {
      'content-type': res.headers.get('content-type'),
      'cache-control': res.headers.get('cache-control'),
      allow: res.headers.get('allow'),
    },
    length: res.headers.get('content-length'),
    text,
  };
};

describe('healthPlugin on the app port', () => {
  it('serves /livez, /readyz, /startupz and /health with the codes, headers and bodies healthServer serves', async () => {
    makeRegistry();
    const a = Fastify();
    await a.register(healthPlugin, { registry });
    a.get('/orders', async () => ({ orders: [] }));
    const base = await listen(a);
    probes = await healthServer({ registry, port: 0, host: '127.0.0.1' });
    for (const state of ['fail', 'pass'] as const) {
      db = state;
      for (const path of ['/livez', '/readyz', '/startupz', '/health']) {
        const ours = await probe(`${base}${path}`);
        const reference = await probe(`${probes.url}${path}`);
        expect(ours.headers, `${path} headers`).toEqual(reference.headers);
        expect(ours.headers).toEqual({
          'content-type': 'application/health+json',
          'cache-control': 'no-store',
          allow: null,
        });
        expect(ours.status, `${path} with the db ${state}`).toBe(reference.status);
        expect(ours.length).toBe(String(Buffer.byteLength(ours.text)));
        const body = JSON.parse(ours.text) as { status: string; checks: Record<string, unknown> };
        expectHealthJson(body);
        const expected = JSON.parse(reference.text) as typeof body;
        expect(body.status).toBe(expected.status);
        expect(Object.keys(body.checks)).toEqual(Object.keys(expected.checks));
      }
    }
    db = 'fail';
    expect((await probe(`${base}/readyz`)).status).toBe(503);
    expect((await probe(`${base}/livez`)).status).toBe(200);
    // the app's own routes are untouched
    expect(await (await fetch(`${base}/orders`)).json()).toEqual({ orders: [] });
  });

  it('answers HEAD without a body, 405 with Allow for other methods, and leaves other paths to the app', async () => {
    makeRegistry();
    const a = Fastify();
    await a.register(healthPlugin, { registry });
    const base = await listen(a);
    probes = await healthServer({ registry, port: 0, host: '127.0.0.1' });
    const head = await probe(`${base}/livez`, 'HEAD');
    const headRef = await probe(`${probes.url}/livez`, 'HEAD');
    expect(head).toMatchObject({ status: 200, text: '', headers: headRef.headers });
    expect(Number(head.length)).toBeGreaterThan(0);
    for (const method of ['POST', 'PUT', 'PATCH', 'DELETE']) {
      const ours = await probe(`${base}/readyz`, method);
      expect(ours, method).toEqual({ ...(await probe(`${probes.url}/readyz`, method)), length: ours.length });
      expect(ours).toMatchObject({
        status: 405,
        text: 'method not allowed\n',
        headers: { allow: 'GET, HEAD' },
      });
    }
    expect((await fetch(`${base}/metrics`)).status).toBe(404);
  });

  it('mounts under prefix and honours paths', async () => {
    makeRegistry();
    db = 'fail';
    const a = Fastify();
    await a.register(healthPlugin, { registry, prefix: '/ops', paths: { all: '/healthz' } });
    const base = await listen(a);
    expect((await probe(`${base}/ops/readyz`)).status).toBe(503);
    expect((await probe(`${base}/ops/livez`)).status).toBe(200);
    const all = await probe(`${base}/ops/healthz`);
    expect(all.status).toBe(503);
    expectHealthJson(JSON.parse(all.text));
    expect((await fetch(`${base}/readyz`)).status).toBe(404);
    expect((await fetch(`${base}/ops/health`)).status).toBe(404);
  });

  it('gives routeConfig to every probe route, so other plugins (a rate limiter) can read it', async () => {
    makeRegistry();
    const a = Fastify();
    const seen: string[] = [];
    a.addHook('onRequest', async (req) => {
      seen.push(`${req.method} ${req.routeOptions.url} ${JSON.stringify(req.routeOptions.config)}`);
    });
    await a.register(healthPlugin, { registry, routeConfig: { probe: 'yes' } as never });
    const base = await listen(a);
    await probe(`${base}/readyz`);
    await probe(`${base}/livez`, 'POST');
    expect(seen).toHaveLength(2);
    expect(seen[0]).toMatch(/^GET \/readyz \{.*"probe":"yes"/);
    expect(seen[1]).toMatch(/^POST \/livez \{.*"probe":"yes"/);
    const bad = Fastify();
    await expect(
      bad.register(healthPlugin, { registry, routeConfig: 'off' as never }).ready(),
    ).rejects.toThrow(/routeConfig must be an object/);
  });

  it('fails readiness with process:shutdown once the registry begins shutting down, liveness keeps passing', async () => {
    makeRegistry();
    const a = Fastify();
    await a.register(healthPlugin, { registry });
    const base = await listen(a);
    registry.beginShutdown();
    const ready = await probe(`${base}/readyz`);
    expect(ready.status).toBe(503);
    const body = JSON.parse(ready.text) as { checks: Record<string, unknown> };
    expectHealthJson(body);
    expect(Object.keys(body.checks)).toContain('process:shutdown');
    expect((await probe(`${base}/livez`)).status).toBe(200);
  });

  it('rejects bad options with a typed error when the app boots', async () => {
    makeRegistry();
    const bad = [
      { registry, prefix: 'ops' },
      { registry, prefix: '/ops/' },
      { registry, paths: { readiness: 'readyz' } },
      { registry, probeServer: { port: -1 } },
      {} as { registry: HealthRegistry },
    ];
    for (const opts of bad) {
      const a = Fastify();
      await expect(a.register(healthPlugin, opts).ready(), JSON.stringify(opts)).rejects.toMatchObject({
        code: 'ERR_OMS_HEALTH_INVALID_OPTION',
      });
      await a.close();
    }
  });
});

describe('healthPlugin with probeServer', () => {
  it('serves the probes on their own port, not on the app, and closes them after the app server drained', async () => {
    makeRegistry();
    const a = Fastify();
    // a port of our own choosing: find a free one first
    const free = createServer();
    await new Promise<void>((r) => free.listen(0, '127.0.0.1', r));
    const port = (free.address() as { port: number }).port;
    await new Promise((r) => free.close(r));
    await a.register(healthPlugin, { registry, probeServer: { port, host: '127.0.0.1' } });
    const base = await listen(a);
    const probeUrl = `http://127.0.0.1:${port}`;
    const ready = await probe(`${probeUrl}/readyz`);
    expect(ready).toMatchObject({ status: 200, headers: { 'content-type': 'application/health+json' } });
    expectHealthJson(JSON.parse(ready.text));
    expect((await fetch(`${base}/readyz`)).status).toBe(404);
    await a.close();
    app = undefined;
    await expect(fetch(`${probeUrl}/livez`)).rejects.toThrow();
  });
});

describe('gracefulShutdown from @oms/health/fastify', () => {
  it("drains through app.close(): in-flight requests finish with Connection: close, Fastify's onClose runs, then the hooks, exit 0", async () => {
    makeRegistry();
    const a = Fastify();
    await a.register(healthPlugin, { registry });
    const order: string[] = [];
    let release: () => void = () => {};
    const started = new Promise<void>((r) => {
      a.get('/slow', async () => {
        r();
        await new Promise<void>((done) => {
          release = done;
        });
        return 'done';
      });
    });
    a.addHook('onClose', async () => void order.push('fastify onClose'));
    const base = await listen(a);
    const exits: number[] = [];
    const phases: ShutdownPhase[] = [];
    const shutdown = gracefulShutdown({
      server: a,
      registry,
      drainDelayMs: 100,
      timeoutMs: 10_000,
      signals: [],
      log: false,
      exit: (c) => exits.push(c),
      hooks: [{ name: 'pg pool', fn: () => void order.push('hook pg pool') }],
    });
    shutdown.on('phase', (e) => phases.push(e.phase));
    const slow = fetch(`${base}/slow`);
    await started;
    const code = shutdown.shutdown('test');
    expect((await probe(`${base}/readyz`)).status).toBe(503);
    await new Promise((r) => setTimeout(r, 200)); // past the drain delay: the listener is closing
    expect(phases).toEqual(['draining', 'closing', 'waiting']);
    expect(shutdown.inFlight().map((r) => r.path)).toEqual(['/slow']);
    expect(order).toEqual([]); // nothing closes while a request is still running
    release();
    const res = await slow;
    expect(res.status).toBe(200);
    expect(res.headers.get('connection')).toBe('close');
    expect(await res.text()).toBe('done');
    expect(await code).toBe(0);
    expect(exits).toEqual([0]);
    expect(phases).toEqual(['draining', 'closing', 'waiting', 'hooks']);
    expect(order).toEqual(['fastify onClose', 'hook pg pool']);
    await expect(fetch(`${base}/livez`)).rejects.toThrow(); // the app server is closed
    shutdown.dispose();
    app = undefined;
  });

  it('exits 1 and logs when app.close() fails, still running the hooks', async () => {
    makeRegistry();
    const logs: string[] = [];
    const hooks: string[] = [];
    const failing = {
      server: createServer(),
      close: () => Promise.reject(new Error('onClose blew up')),
    };
    const shutdown = gracefulShutdown({
      server: failing,
      registry,
      drainDelayMs: 0,
      timeoutMs: 5_000,
      signals: [],
      log: (e) => void logs.push(e.msg),
      exit: () => {},
      hooks: [{ name: 'pg pool', fn: () => void hooks.push('pg pool') }],
    });
    expect(await shutdown.shutdown()).toBe(1);
    expect(logs).toEqual(['closing the server failed: onClose blew up']);
    expect(hooks).toEqual(['pg pool']);
    shutdown.dispose();
  });

  it('tells which gracefulShutdown takes a Fastify instance', () => {
    makeRegistry();
    const base = { registry, drainDelayMs: 0, timeoutMs: 1000, signals: [], exit: () => {} };
    const a = Fastify();
    expect(() =>
      nodeGracefulShutdown({ ...base, server: a as unknown as import('node:http').Server }),
    ).toThrow(/import gracefulShutdown from @oms\/health\/fastify/);
    expect(() => gracefulShutdown({ ...base, server: {} as unknown as FastifyInstance })).toThrow(
      expect.objectContaining({ code: 'ERR_OMS_HEALTH_INVALID_OPTION' }),
    );
    expect(() => gracefulShutdown({ ...base, drainDelayMs: 1000, server: a })).toThrow(
      /timeoutMs \(1000\) must be greater than drainDelayMs/,
    );
    void a.close();
  });

  it('holds a bare script open through the drain and a stuck hook until its timeout, and exits (not 13)', async () => {
    const dist = new URL('../dist/fastify/index.js', import.meta.url);
    if (!existsSync(dist))
      throw new Error('dist/fastify/index.js is missing: build the package before testing');
    const r = await runAlone({
      imports: {
        health: new URL('../dist/index.js', import.meta.url),
        adapter: dist,
        fastify: createRequire(import.meta.url).resolve('fastify'),
      },
      body: `
        const app = fastify.default();
        await app.ready(); // not listening: only the shutdown's own timers may keep this script alive
        const registry = health.healthRegistry({ service: 'job', version: '1', processChecks: false });
        const phases = [];
        const shutdown = adapter.gracefulShutdown({
          server: app, registry, drainDelayMs: 300, timeoutMs: 10_000, signals: [], log: false,
          exit: (code) => print({ code, phases }),
          // never settles: only the hook's own timeout can end it
          hooks: [{ name: 'stuck', fn: () => new Promise(() => {}), timeoutMs: 150 }],
        });
        shutdown.on('phase', (e) => phases.push(e.phase));
        await shutdown.shutdown('job done');
      `,
      killAfterMs: 20_000,
    });
    expect(r.signal, explainRun(r)).toBeNull();
    expect(r.code, explainRun(r)).toBe(0);
    expect(r.out).toEqual({ code: 1, phases: ['draining', 'closing', 'waiting', 'hooks'] });
  });
});
