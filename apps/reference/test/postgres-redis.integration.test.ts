import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { until, usePostgres, useRedis } from '@oms/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type PaymentsServer, startPaymentsServer } from '../src/payments/server.js';
import { createOrder, type Harness, ORDER, start } from './helpers.js';

// The same code on real PostgreSQL and Redis (from @oms/testkit), as two instances sharing them: what one
// instance does (a breaker trip, a rate limit, a freeze, audit appends) the other sees.

const pg = usePostgres();
const redis = useRedis();
let payments: PaymentsServer;
let a: Harness;
let b: Harness;
let dataDir: string;
const ROUTE_LIMIT = 24; // above the 20 concurrent creates of one principal

beforeAll(async () => {
  payments = await startPaymentsServer();
  dataDir = await mkdtemp(join(tmpdir(), 'oms-reference-pg-'));
  const env = (id: string) => ({
    PORT: '0',
    LOG_LEVEL: 'silent',
    DATA_DIR: dataDir, // the dev keys (shared, as a real JWKS would be) and the backup directory
    DATABASE_URL: pg.url,
    REDIS_URL: redis.url,
    REDIS_PREFIX: redis.prefix,
    INSTANCE_ID: id,
    PAYMENTS_URL: payments.url,
    BREAKER_OPEN_MS: '6000', // the open state must outlast the cross-instance check on a loaded machine
    RATE_GLOBAL_PER_MIN: '1000000',
    RATE_PRINCIPAL_PER_MIN: '1000000',
    RATE_IP_PER_MIN: '1000000',
    RATE_ROUTE_PER_MIN: String(ROUTE_LIMIT),
  });
  a = await start(env('a'), dataDir);
  b = await start(env('b'), dataDir);
});
afterAll(async () => {
  await a?.app.close();
  await b?.app.close();
  await payments?.close();
  await rm(dataDir, { recursive: true, force: true });
});

describe('on PostgreSQL and Redis, two instances', () => {
  it('chose postgres and redis', async () => {
    expect(a.app.backends).toEqual({ db: 'postgres', cache: 'redis' });
    const health = await a.call('GET', '/health');
    expect(Object.keys(health.body.checks)).toEqual(
      expect.arrayContaining(['postgres:responseTime', 'redis:responseTime', 'outbox:backlog']),
    );
    expect((await b.call('GET', '/readyz')).status).toBe(200);
  });

  it('20 concurrent identical POSTs with one key, across both instances, create exactly one order', async () => {
    const token = await a.token('customer', 'pg-idem');
    const key = crypto.randomUUID();
    const replies = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        (i % 2 ? a : b).call('POST', '/v1/orders', {
          token,
          body: ORDER,
          headers: { 'idempotency-key': key },
        }),
      ),
    );
    const statuses = replies.map((r) => r.status).sort((x, y) => x - y);
    expect(statuses).toEqual([...Array(19).fill(200), 201]);
    expect(new Set(replies.map((r) => r.body.order.id)).size).toBe(1);
    const n = await a.app.internals.db
      .selectFrom('orders')
      .select((e) => e.fn.countAll<string>().as('n'))
      .where('customer_id', '=', 'pg-idem')
      .executeTakeFirstOrThrow();
    expect(Number(n.n)).toBe(1);
  });

  it('pays, and the Redis Streams consumer applies each event exactly once', async () => {
    const token = await a.token('customer', 'pg-payer');
    const order = await createOrder(a, token);
    const paid = await b.call('POST', `/v1/orders/${order.id}/pay`, { token });
    expect(paid.status, paid.text).toBe(200);
    const admin = await a.token('admin');
    const seen = await until(
      async () => {
        const r = await a.call('GET', `/admin/notifications?orderId=${order.id}`, { token: admin });
        return r.body.notifications.length >= 2 ? r.body.notifications : undefined;
      },
      { timeoutMs: 15_000, what: 'both events to be consumed from the stream' },
    );
    expect(seen.map((n: { type: string }) => n.type).sort()).toEqual(['OrderCreated', 'OrderPaid']);
  });

  it('a rate limit is shared: the route+principal quota counts requests on both instances', async () => {
    const token = await a.token('customer', 'pg-rl');
    const started = Date.now();
    let admitted = 0;
    let denied = 0;
    // alternate instances until one denies; the bucket refills at ROUTE_LIMIT/min meanwhile
    while (denied === 0 && admitted < ROUTE_LIMIT * 3) {
      const r = await (admitted % 2 ? a : b).call('GET', '/v1/orders', { token });
      if (r.status === 429) denied++;
      else admitted++;
    }
    const refilled = Math.ceil((((Date.now() - started) / 1000) * ROUTE_LIMIT) / 60);
    expect(admitted).toBeGreaterThanOrEqual(ROUTE_LIMIT);
    // separate quotas would have admitted twice as many
    expect(admitted).toBeLessThanOrEqual(ROUTE_LIMIT + refilled);
  });

  it('a freeze taken on one instance gives 423 on the other, naming the holder', async () => {
    const admin = await a.token('admin', 'pg-admin');
    const token = await a.token('customer', 'pg-freeze');
    const f = await a.call('POST', '/admin/maintenance/freeze', {
      token: admin,
      body: { reason: 'vacuum', etaSec: 60 },
    });
    expect(f.status, f.text).toBe(200);
    try {
      const r = await b.call('POST', '/v1/orders', {
        token,
        body: ORDER,
        headers: { 'idempotency-key': 'pg-frozen' },
      });
      expect(r.status).toBe(423);
      expect(r.body).toMatchObject({
        code: 'MAINTENANCE',
        holder: 'pg-admin@a',
        since: f.body.since,
        eta: f.body.eta,
      });
      // only the holder lifts it
      expect((await b.call('DELETE', '/admin/maintenance/freeze', { token: admin })).status).toBe(409);
    } finally {
      expect((await a.call('DELETE', '/admin/maintenance/freeze', { token: admin })).body).toEqual({
        frozen: false,
      });
    }
    expect(
      (
        await b.call('POST', '/v1/orders', {
          token,
          body: ORDER,
          headers: { 'idempotency-key': 'pg-thawed' },
        })
      ).status,
    ).toBe(201);
  });

  it('a breaker trip on one instance opens the breaker on the other (one shared state)', async () => {
    const token = await a.token('customer', 'pg-breaker');
    const admin = await a.token('admin');
    const order = await createOrder(a, token);
    payments.setFaults({ down: true });
    try {
      await until(
        async () => {
          await a.call('POST', `/v1/orders/${order.id}/pay`, { token });
          return a.app.internals.payments.breaker.state === 'open';
        },
        { timeoutMs: 20_000, intervalMs: 50, what: 'instance a to open its breaker' },
      );
      await until(() => b.app.internals.payments.breaker.state === 'open', {
        timeoutMs: 5_000,
        what: 'instance b to see the trip',
      });
      const listed = await b.call('GET', '/admin/breakers', { token: admin });
      expect(listed.body.breakers).toEqual([{ name: 'payments', state: 'open' }]);
      const before = payments.stats().requests;
      const rejected = await b.call('POST', `/v1/orders/${order.id}/pay`, { token });
      expect(rejected.status).toBe(503);
      expect(rejected.body.detail).toContain('ERR_OMS_BREAKER_OPEN');
      expect(payments.stats().requests).toBe(before); // b never called payments itself
    } finally {
      payments.setFaults({ down: false });
    }
    const paid = await until(
      async () => {
        const r = await b.call('POST', `/v1/orders/${order.id}/pay`, { token });
        return r.status === 200 ? r : undefined;
      },
      { timeoutMs: 20_000, intervalMs: 250, what: 'pay to succeed after the open period' },
    );
    expect(paid.body.order.status).toBe('paid');
  });

  it('concurrent audit appends from both instances keep one unbroken chain', async () => {
    const token = await a.token('customer', 'pg-audit');
    await Promise.all(
      Array.from({ length: 40 }, (_, i) => (i % 2 ? a : b).call('GET', '/admin/breakers', { token })),
    );
    await Promise.all([a.app.internals.audit.flush(), b.app.internals.audit.flush()]);
    const admin = await a.token('admin');
    const v = await b.call('GET', '/admin/audit/verify', { token: admin });
    expect(v.body.ok, JSON.stringify(v.body)).toBe(true);
    expect(v.body.rows).toBeGreaterThanOrEqual(40);
  });
});
