import type { Server } from 'node:http';
import express from 'express';
import { afterEach, describe, expect, it } from 'vitest';
import { gracefulShutdown, healthMiddleware } from '../src/express/index.js';
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
let server: Server | undefined;
let probes: HealthServer | undefined;
afterEach(async () => {
  server?.closeAllConnections();
  await new Promise((r) => (server?.listening ? server.close(r) : r(undefined)));
  await probes?.close();
  await registry?.close();
  server = probes = undefined;
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

const listen = async (app: express.Express) => {
  const s = await new Promise<Server>((resolve, reject) => {
    const created = app.listen(0, '127.0.0.1', (err?: Error) => (err ? reject(err) : resolve(created)));
  });
  server = s;
  const addr = s.address();
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
      etag: res.headers.get('etag'), // X-Powered-By is the app's own setting, so not compared
    },
    length: res.headers.get('content-length'),
    text,
  };
};

describe('healthMiddleware on an Express 5 app', () => {
  it('serves /livez, /readyz, /startupz and /health with the codes, headers and bodies healthServer serves', async () => {
    makeRegistry();
    const app = express();
    app.use(healthMiddleware({ registry }));
    app.get('/orders', (_req, res) => void res.json({ orders: [] }));
    const base = await listen(app);
    probes = await healthServer({ registry, port: 0, host: '127.0.0.1' });
    for (const state of ['fail', 'pass'] as const) {
      db = state;
      for (const path of ['/livez', '/readyz', '/startupz', '/health']) {
        const ours = await probe(`${base}${path}`);
        const reference = await probe(`${probes.url}${path}`);
        // exactly healthServer's headers: no charset, no ETag (a 304 to a probe would be a cached answer)
        expect(ours.headers, `${path} headers`).toEqual(reference.headers);
        expect(ours.headers).toMatchObject({
          'content-type': 'application/health+json',
          'cache-control': 'no-store',
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
    expect(await (await fetch(`${base}/orders`)).json()).toEqual({ orders: [] });
  });

  it('answers HEAD without a body, 405 with Allow for other methods, and passes other paths to next()', async () => {
    makeRegistry();
    const app = express();
    app.use(healthMiddleware({ registry }));
    app.use((_req, res) => void res.status(418).send('the app'));
    const base = await listen(app);
    probes = await healthServer({ registry, port: 0, host: '127.0.0.1' });
    const head = await probe(`${base}/livez`, 'HEAD');
    expect(head).toEqual({ ...(await probe(`${probes.url}/livez`, 'HEAD')), length: head.length });
    expect(head).toMatchObject({ status: 200, text: '' });
    for (const method of ['POST', 'PUT', 'PATCH', 'DELETE']) {
      const ours = await probe(`${base}/readyz`, method);
      expect(ours, method).toEqual(await probe(`${probes.url}/readyz`, method));
      expect(ours).toMatchObject({
        status: 405,
        text: 'method not allowed\n',
        headers: { allow: 'GET, HEAD' },
      });
    }
    expect(await probe(`${base}/metrics`)).toMatchObject({ status: 418, text: 'the app' });
  });

  it('works under a prefix, mounted at a path, and with custom paths', async () => {
    makeRegistry();
    db = 'fail';
    const app = express();
    app.use(healthMiddleware({ registry, prefix: '/ops', paths: { all: '/healthz' } }));
    app.use('/mounted', healthMiddleware({ registry }));
    const base = await listen(app);
    expect((await probe(`${base}/ops/readyz`)).status).toBe(503);
    expect((await probe(`${base}/ops/livez`)).status).toBe(200);
    const all = await probe(`${base}/ops/healthz?verbose=1`);
    expect(all.status).toBe(503);
    expectHealthJson(JSON.parse(all.text));
    expect((await probe(`${base}/mounted/readyz`)).status).toBe(503);
    expect((await probe(`${base}/mounted/livez`)).status).toBe(200);
    expect((await fetch(`${base}/readyz`)).status).toBe(404);
  });

  it('rejects bad options with a typed error', () => {
    makeRegistry();
    for (const opts of [
      { registry, prefix: 'ops' },
      { registry, prefix: '/ops/' },
      { registry, paths: { readiness: 'readyz' } },
      {} as { registry: HealthRegistry },
    ]) {
      expect(() => healthMiddleware(opts), JSON.stringify(opts)).toThrow(
        expect.objectContaining({ code: 'ERR_OMS_HEALTH_INVALID_OPTION' }),
      );
    }
  });
});

describe('gracefulShutdown with the server app.listen() returns', () => {
  it('is the node:http one, and drains an Express server: Connection: close, in-flight finish, hooks, exit 0', async () => {
    expect(gracefulShutdown).toBe(nodeGracefulShutdown);
    makeRegistry();
    const app = express();
    app.use(healthMiddleware({ registry }));
    let release: () => void = () => {};
    const started = new Promise<void>((r) => {
      app.get('/slow', (_req, res) => {
        r();
        release = () => void res.send('done');
      });
    });
    app.get('/fast', (_req, res) => void res.send('fast'));
    const base = await listen(app);
    const hooks: string[] = [];
    const exits: number[] = [];
    const phases: ShutdownPhase[] = [];
    const shutdown = gracefulShutdown({
      server: server as Server,
      registry,
      drainDelayMs: 150,
      timeoutMs: 10_000,
      signals: [],
      log: false,
      exit: (c) => exits.push(c),
      hooks: [{ name: 'pg pool', fn: () => void hooks.push('pg pool') }],
    });
    shutdown.on('phase', (e) => phases.push(e.phase));
    const slow = fetch(`${base}/slow`);
    await started;
    const code = shutdown.shutdown('test');
    const ready = await probe(`${base}/readyz`);
    expect(ready.status).toBe(503);
    expectHealthJson(JSON.parse(ready.text));
    // during the drain the app still answers, and tells keep-alive clients to go away
    const during = await fetch(`${base}/fast`);
    expect(during.headers.get('connection')).toBe('close');
    expect(await during.text()).toBe('fast');
    await new Promise((r) => setTimeout(r, 250));
    expect(phases).toEqual(['draining', 'closing', 'waiting']);
    expect(shutdown.inFlight().map((r) => r.path)).toEqual(['/slow']);
    expect(hooks).toEqual([]);
    release();
    const res = await slow;
    expect(res.headers.get('connection')).toBe('close');
    expect(await res.text()).toBe('done');
    expect(await code).toBe(0);
    expect(exits).toEqual([0]);
    expect(phases).toEqual(['draining', 'closing', 'waiting', 'hooks']);
    expect(hooks).toEqual(['pg pool']);
    expect(server?.listening).toBe(false);
    shutdown.dispose();
  });
});
