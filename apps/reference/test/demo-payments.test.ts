import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { until } from '@oms/testkit';
import { afterEach, describe, expect, it } from 'vitest';
import { type PaymentsServer, startPaymentsServer } from '../src/payments/server.js';

const servers: PaymentsServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});
async function start(opts: Parameters<typeof startPaymentsServer>[0] = {}) {
  const s = await startPaymentsServer(opts);
  servers.push(s);
  return s;
}
const body = { orderId: 'o-1', amountCents: 1250, currency: 'EUR' };
function charge(url: string, key: string | undefined, b: unknown = body) {
  return fetch(`${url}/charges`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(key ? { 'idempotency-key': key } : {}) },
    body: JSON.stringify(b),
  });
}

describe('payments server', () => {
  it('creates a charge and answers a replay of the same Idempotency-Key with the same chargeId', async () => {
    const p = await start();
    const a = await charge(p.url, 'k1');
    expect(a.status).toBe(200);
    const ja = (await a.json()) as { chargeId: string; orderId: string };
    expect(ja.orderId).toBe('o-1');
    expect(ja.chargeId).toMatch(/^ch_/);
    const b = await charge(p.url, 'k1');
    expect(b.status).toBe(200);
    expect(b.headers.get('idempotent-replayed')).toBe('true');
    expect(((await b.json()) as { chargeId: string }).chargeId).toBe(ja.chargeId);
    const c = await charge(p.url, 'k2');
    expect(((await c.json()) as { chargeId: string }).chargeId).not.toBe(ja.chargeId);
    expect(p.stats()).toMatchObject({ requests: 3, charges: 2, replays: 1 });
    expect(p.charges().map((x) => x.idempotencyKey)).toEqual(['k1', 'k2']);
  });

  it('rejects a missing key, a bad body and a reused key with a different charge', async () => {
    const p = await start();
    expect((await charge(p.url, undefined)).status).toBe(400);
    expect((await charge(p.url, 'k', { orderId: 'o', amountCents: 1.5, currency: 'EUR' })).status).toBe(400);
    expect((await charge(p.url, 'k', { ...body, currency: 'euro' })).status).toBe(400);
    expect((await charge(p.url, 'k')).status).toBe(200);
    const r = await charge(p.url, 'k', { ...body, amountCents: 999 });
    expect(r.status).toBe(422);
    expect(((await r.json()) as { error: string }).error).toBe('idempotency_key_reused');
  });

  it('down answers 503 with Retry-After; errorRate 1 answers 500; both switch back', async () => {
    const p = await start();
    const put = await fetch(`${p.url}/faults`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ down: true }),
    });
    expect(put.status).toBe(200);
    expect(await put.json()).toEqual({ latencyMs: 0, errorRate: 0, down: true });
    const down = await charge(p.url, 'k');
    expect(down.status).toBe(503);
    expect(down.headers.get('retry-after')).toBe('1');
    p.setFaults({ down: false, errorRate: 1 });
    expect((await charge(p.url, 'k')).status).toBe(500);
    p.setFaults({ errorRate: 0 });
    expect((await charge(p.url, 'k')).status).toBe(200);
    expect(p.stats()).toMatchObject({ faulted: 2, charges: 1 });
    expect(await (await fetch(`${p.url}/faults`)).json()).toEqual({
      latencyMs: 0,
      errorRate: 0,
      down: false,
    });
  });

  it('errorRate fails the fraction the random source picks', async () => {
    const draws = [0.1, 0.9, 0.2, 0.8];
    const p = await start({ faults: { errorRate: 0.5 }, random: () => draws.shift() ?? 0 });
    const statuses = [];
    for (let i = 0; i < 4; i++) statuses.push((await charge(p.url, `k${i}`)).status);
    expect(statuses).toEqual([500, 200, 500, 200]);
  });

  it('latencyMs delays the answer', async () => {
    const p = await start({ faults: { latencyMs: 150 } });
    const t0 = performance.now();
    expect((await charge(p.url, 'k')).status).toBe(200);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(140);
  });

  it('validates fault switches, over HTTP and in setFaults', async () => {
    const p = await start();
    for (const bad of [{ errorRate: 2 }, { latencyMs: -1 }, { down: 'yes' }, { nope: 1 }]) {
      const r = await fetch(`${p.url}/faults`, { method: 'PUT', body: JSON.stringify(bad) });
      expect(r.status, JSON.stringify(bad)).toBe(400);
    }
    expect(() => p.setFaults({ errorRate: -0.1 })).toThrow(/errorRate must be a number in 0..1/);
    expect(p.faults()).toEqual({ latencyMs: 0, errorRate: 0, down: false });
    expect((await fetch(`${p.url}/healthz`)).status).toBe(200);
    expect((await fetch(`${p.url}/nope`)).status).toBe(404);
  });

  it('close() ends a request held by latency and stops listening', async () => {
    const p = await startPaymentsServer({ faults: { latencyMs: 60_000 } });
    const inflight = charge(p.url, 'k').then(
      () => 'answered',
      () => 'reset',
    );
    await until(() => p.stats().requests === 1, { what: 'the charge to reach the server' });
    await p.close();
    expect(await inflight).toBe('reset');
    await expect(fetch(`${p.url}/healthz`)).rejects.toThrow();
  });

  it('runs as a process: prints its url, serves, and exits 0 on SIGTERM', async () => {
    const main = fileURLToPath(new URL('../dist/payments/main.js', import.meta.url));
    const child = spawn(process.execPath, [main, '--port', '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      const lines = createInterface({ input: child.stdout });
      const [first] = (await once(lines, 'line')) as [string];
      const { msg, url } = JSON.parse(first) as { msg: string; url: string };
      expect(msg).toBe('listening');
      expect((await charge(url, 'k')).status).toBe(200);
      child.kill('SIGTERM');
      const [code] = await once(child, 'exit');
      expect(code).toBe(0);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });
});
