import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { until, usePostgres, useRedis } from '@oms/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { APP_MAIN, type AppInstance, killAll, startApp } from '../src/demo/processes.js';
import { rateLimitStoreErrors } from '../src/demo/steps.js';
import { ensureDevKeys, mintDevToken } from '../src/dev-keys.js';
import { type PaymentsServer, startPaymentsServer } from '../src/payments/server.js';

// Three app processes (`node dist/main.js`) on one PostgreSQL database and one Redis key prefix: the global
// rate limit is one budget for all of them, and the payments breaker is one state.

const N = 60; // RATE_GLOBAL_PER_MIN
const INSTANCES = 3;
const pg = usePostgres();
const redis = useRedis();
let dataDir: string;
let payments: PaymentsServer;
let apps: AppInstance[] = [];

beforeAll(async () => {
  if (!existsSync(APP_MAIN)) throw new Error(`${APP_MAIN} is missing: build the app before testing`);
  dataDir = mkdtempSync(join(tmpdir(), 'oms-ref-scale-'));
  await ensureDevKeys(dataDir); // one key pair for every instance
  payments = await startPaymentsServer();
  const env = (i: number): Record<string, string> => ({
    DATA_DIR: dataDir,
    DATABASE_URL: pg.url,
    REDIS_URL: redis.url,
    REDIS_PREFIX: redis.prefix,
    PAYMENTS_URL: payments.url,
    INSTANCE_ID: `scale-${i}`,
    RATE_GLOBAL_PER_MIN: String(N),
    RATE_IP_PER_MIN: '1000000',
    RATE_PRINCIPAL_PER_MIN: '1000000',
    RATE_ROUTE_PER_MIN: '1000000',
    BREAKER_OPEN_MS: '60000',
    BACKUP_EVERY_MS: '0',
    SHUTDOWN_DRAIN_MS: '0',
  });
  // the first one migrates the database alone, the others then start together
  apps = [await startApp('scale-1', env(1))];
  apps.push(
    ...(await Promise.all(
      Array.from({ length: INSTANCES - 1 }, (_, i) => startApp(`scale-${i + 2}`, env(i + 2))),
    )),
  );
}, 300_000);

afterAll(async () => {
  for (const a of apps) a.proc.child.kill('SIGTERM');
  await Promise.all(apps.map((a) => a.proc.exited));
  killAll();
  await payments?.close();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

async function get(url: string, token: string): Promise<number> {
  const r = await fetch(url, {
    headers: { authorization: `Bearer ${token}` },
    signal: AbortSignal.timeout(30_000),
  });
  await r.arrayBuffer();
  return r.status;
}

describe(`${INSTANCES} instances on one Redis and PostgreSQL`, () => {
  it(`admit at most N=${N}/min across all of them, each instance sending N`, {
    timeout: 120_000,
  }, async () => {
    expect(apps).toHaveLength(INSTANCES);
    const tokens = await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        mintDevToken({ dataDir, role: 'customer', subject: `scale-${i}` }),
      ),
    );
    // each instance alone receives N requests: limits per instance would admit every one of them
    const total = N * INSTANCES;
    const admitted = apps.map(() => 0);
    const denied = apps.map(() => 0);
    const other: string[] = [];
    let next = 0;
    const errorsBefore = await Promise.all(apps.map(rateLimitStoreErrors));
    const t0 = performance.now();
    const worker = async () => {
      for (;;) {
        const i = next++;
        if (i >= total) return;
        const a = i % INSTANCES;
        const s = await get(`${apps[a]!.url}/v1/orders?limit=1`, tokens[i % tokens.length]!);
        if (s === 200) admitted[a]!++;
        else if (s === 429) denied[a]!++;
        else other.push(`${apps[a]!.name}: ${s}`);
      }
    };
    await Promise.all(Array.from({ length: 12 }, worker));
    const elapsedMs = performance.now() - t0;
    const sum = admitted.reduce((x, y) => x + y, 0);
    // a token bucket of N per minute refills while the burst runs: exactly that much more may pass
    const bound = N + Math.ceil((N * elapsedMs) / 60_000);
    const errorsAfter = await Promise.all(apps.map(rateLimitStoreErrors));
    const storeErrors = errorsAfter.reduce((a, e, i) => a + e - errorsBefore[i]!, 0);
    // The global limiter denies when its store fails ('closed'), so a slow Redis can never let more through.
    const what = `admitted ${JSON.stringify(admitted)}, denied ${JSON.stringify(denied)} in ${Math.round(elapsedMs)} ms; bound N ${N} + refill ${bound - N} (${storeErrors} store errors)`;
    console.info(`scale: ${what}`);
    expect(other, what).toEqual([]);
    expect(sum, what).toBeLessThanOrEqual(bound);
    expect(sum, what).toBeGreaterThan(0);
    for (const d of denied) expect(d, what).toBeGreaterThan(0);
  });

  it('share one breaker: opened through one instance, open on the others without calling payments', {
    timeout: 120_000,
  }, async () => {
    const admin = await mintDevToken({ dataDir, role: 'admin', subject: 'scale-admin' });
    const customer = await mintDevToken({ dataDir, role: 'customer', subject: 'scale-buyer' });
    // the global limit of the first test still applies: wait out its refill rather than fail on a 429
    const call = async (method: string, url: string, init: RequestInit = {}) => {
      for (;;) {
        const r = await fetch(url, { method, ...init, signal: AbortSignal.timeout(30_000) });
        if (r.status !== 429) return r;
        await r.arrayBuffer();
        await new Promise((res) => setTimeout(res, Number(r.headers.get('retry-after') ?? 1) * 1000));
      }
    };
    const state = async (a: AppInstance) => {
      const r = await call('GET', `${a.url}/admin/breakers`, {
        headers: { authorization: `Bearer ${admin}` },
      });
      const b = (await r.json()) as { breakers: { name: string; state: string }[] };
      return b.breakers.find((x) => x.name === 'payments')?.state;
    };
    const auth = (t: string) => ({ authorization: `Bearer ${t}` });
    const created = await call('POST', `${apps[0]!.url}/v1/orders`, {
      headers: { ...auth(customer), 'content-type': 'application/json', 'idempotency-key': 'scale-breaker' },
      body: JSON.stringify({ items: [{ sku: 's', quantity: 1, unitPriceCents: 100 }], currency: 'EUR' }),
    });
    expect(created.status).toBe(201);
    const { order } = (await created.json()) as { order: { id: string } };
    payments.setFaults({ down: true });
    try {
      let pays = 0;
      while ((await state(apps[0]!)) !== 'open') {
        expect(pays++, 'pays before the breaker opened').toBeLessThan(10);
        const r = await call('POST', `${apps[0]!.url}/v1/orders/${order.id}/pay`, {
          headers: auth(customer),
        });
        await r.arrayBuffer();
        expect(r.status).toBe(503);
      }
      for (const a of apps.slice(1)) {
        // the trip is pushed over Redis pub/sub: it arrives within milliseconds, not synchronously
        await until(async () => (await state(a)) === 'open', {
          timeoutMs: 10_000,
          what: `${a.name} to see it open`,
        });
      }
      const before = payments.stats().requests;
      const r = await call('POST', `${apps[2]!.url}/v1/orders/${order.id}/pay`, { headers: auth(customer) });
      expect(r.status).toBe(503);
      expect(((await r.json()) as { code: string }).code).toBe('PAYMENTS_UNAVAILABLE');
      expect(r.headers.get('retry-after')).not.toBeNull();
      expect(payments.stats().requests, 'a pay through an open breaker reached payments').toBe(before);
    } finally {
      payments.setFaults({ down: false });
    }
  });
});
