import { afterEach, describe, expect, it } from 'vitest';
import { type HealthRegistry, type HealthServer, healthRegistry, healthServer } from '../src/index.js';
import { expectHealthJson } from './helpers.js';

let registry: HealthRegistry;
let probes: HealthServer | undefined;
afterEach(async () => {
  await probes?.close();
  await registry?.close();
});

const setup = async (dbStatus: () => 'pass' | 'fail') => {
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
    check: () => ({ status: dbStatus() }),
    kinds: ['readiness', 'startup'],
    critical: true,
    timeoutMs: 100,
  });
  probes = await healthServer({ registry, port: 0, host: '127.0.0.1' });
  return probes;
};

describe('handler(kind)', () => {
  it('returns status, health+json headers and a serialised body', async () => {
    await setup(() => 'fail');
    const r = await registry.handler('readiness');
    expect(r.status).toBe(503);
    expect(r.headers).toEqual({ 'content-type': 'application/health+json', 'cache-control': 'no-store' });
    const body = JSON.parse(r.body);
    expect(body.status).toBe('fail');
    expectHealthJson(body);
  });
});

describe('healthServer', () => {
  it('serves /livez, /readyz, /startupz and /health with the right codes', async () => {
    let db: 'pass' | 'fail' = 'fail';
    const p = await setup(() => db);
    const get = async (path: string) => {
      const res = await fetch(`${p.url}${path}`);
      const body = (await res.json()) as { status: string };
      expectHealthJson(body);
      expect(res.headers.get('content-type')).toBe('application/health+json');
      return [res.status, body.status];
    };
    expect(await get('/livez')).toEqual([200, 'pass']);
    expect(await get('/readyz')).toEqual([503, 'fail']);
    expect(await get('/startupz')).toEqual([503, 'fail']);
    expect(await get('/health')).toEqual([503, 'fail']);
    db = 'pass';
    expect(await get('/readyz')).toEqual([200, 'pass']);
    expect(await get('/startupz')).toEqual([200, 'pass']);
    expect(await get('/health?verbose=1')).toEqual([200, 'pass']);
  });

  it('answers 404 for other paths, 405 for other methods, and HEAD without a body', async () => {
    const p = await setup(() => 'pass');
    expect((await fetch(`${p.url}/metrics`)).status).toBe(404);
    const post = await fetch(`${p.url}/readyz`, { method: 'POST' });
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET, HEAD');
    const head = await fetch(`${p.url}/livez`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(await head.text()).toBe('');
  });

  it('closes when its signal aborts, and rejects with a typed error when already aborted', async () => {
    registry = healthRegistry({ service: 's', version: '1', processChecks: false });
    const ac = new AbortController();
    probes = await healthServer({ registry, port: 0, host: '127.0.0.1', signal: ac.signal });
    expect((await fetch(`${probes.url}/livez`)).status).toBe(200);
    ac.abort();
    await probes.close(); // the same close the abort started
    await expect(fetch(`${probes.url}/livez`)).rejects.toThrow();
    await expect(
      healthServer({ registry, port: 0, host: '127.0.0.1', signal: AbortSignal.abort() }),
    ).rejects.toMatchObject({ code: 'ERR_OMS_HEALTH_ABORTED' });
  });

  it('rejects a bad port with a typed error', async () => {
    registry = healthRegistry({ service: 's', version: '1', processChecks: false });
    await expect(healthServer({ registry, port: -1 })).rejects.toMatchObject({
      code: 'ERR_OMS_HEALTH_INVALID_OPTION',
    });
  });
});
