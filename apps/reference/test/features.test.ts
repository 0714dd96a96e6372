import { createServer, type Server } from 'node:http';
import { until } from '@oms/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type PaymentsServer, startPaymentsServer } from '../src/payments/server.js';
import { createOrder, type Harness, ORDER, startEmbedded } from './helpers.js';

// The features of the issue, end to end on the embedded app (PGlite, memory stores) with the fake payments
// service in this process.

let h: Harness;
let payments: PaymentsServer;
let collector: Server;
const exported: { path: string; body: Buffer }[] = [];
let admin: string;
const ROUTE_LIMIT = 30;

beforeAll(async () => {
  payments = await startPaymentsServer();
  // an OTLP/HTTP collector: it keeps what the app exports
  collector = createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', () => {
      exported.push({ path: req.url ?? '', body: Buffer.concat(parts) });
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => collector.listen(0, '127.0.0.1', resolve));
  const { port } = collector.address() as { port: number };
  h = await startEmbedded({
    PAYMENTS_URL: payments.url,
    BREAKER_OPEN_MS: '5000', // long enough that the open state outlasts a request on a loaded machine
    PAYMENTS_TIMEOUT_MS: '2000',
    RATE_ROUTE_PER_MIN: String(ROUTE_LIMIT),
    OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}`,
  });
  admin = await h.token('admin', 'admin-1');
});
afterAll(async () => {
  await h?.close();
  await payments?.close();
  collector?.close();
});

const notificationsOf = async (orderId: string) =>
  (await h.call('GET', `/admin/notifications?orderId=${orderId}`, { token: admin })).body.notifications as {
    messageId: string;
    type: string;
  }[];

describe('pay through the payments pipeline', () => {
  it('pays an order once, and the consumer applies OrderCreated and OrderPaid exactly once each', async () => {
    const token = await h.token('customer', 'payer');
    const order = await createOrder(h, token);
    const paid = await h.call('POST', `/v1/orders/${order.id}/pay`, { token });
    expect(paid.status, paid.text).toBe(200);
    expect(paid.body.order).toMatchObject({ id: order.id, status: 'paid', version: 3 });
    const again = await h.call('POST', `/v1/orders/${order.id}/pay`, { token });
    expect(again.body.order.status).toBe('paid');
    expect(payments.charges().filter((c) => c.orderId === order.id)).toHaveLength(1);
    const seen = await until(
      async () => {
        const n = await notificationsOf(order.id);
        return n.length >= 2 ? n : undefined;
      },
      { timeoutMs: 15_000, what: 'OrderCreated and OrderPaid to be consumed' },
    );
    expect(seen.map((n) => n.type).sort()).toEqual(['OrderCreated', 'OrderPaid']);
    // a redelivery of the same message (what a relay crash between publish and settle causes) changes nothing
    const first = seen[0]!;
    const status = await h.app.internals.applyNotification({
      id: first.messageId,
      topic: 'orders',
      key: order.id,
      type: first.type,
      payload: {},
      headers: {},
      createdAt: new Date(),
      attempts: 1,
    });
    expect(status).toBe('duplicate');
    expect(await notificationsOf(order.id)).toHaveLength(2);
  });

  it('a paid order cannot be cancelled: 409 INVALID_TRANSITION', async () => {
    const token = await h.token('customer', 'payer2');
    const order = await createOrder(h, token);
    expect((await h.call('POST', `/v1/orders/${order.id}/pay`, { token })).status).toBe(200);
    const r = await h.call('POST', `/v1/orders/${order.id}/cancel`, { token });
    expect(r.status).toBe(409);
    expect(r.body).toMatchObject({
      code: 'INVALID_TRANSITION',
      type: 'https://oms.dev/problems/invalid-transition',
    });
  });

  it('cancel enqueues OrderCancelled, consumed once', async () => {
    const token = await h.token('customer', 'canceller');
    const order = await createOrder(h, token);
    const r = await h.call('POST', `/v1/orders/${order.id}/cancel`, { token });
    expect(r.body.order.status).toBe('cancelled');
    const seen = await until(
      async () => {
        const n = await notificationsOf(order.id);
        return n.some((x) => x.type === 'OrderCancelled') ? n : undefined;
      },
      { timeoutMs: 15_000, what: 'OrderCancelled to be consumed' },
    );
    expect(seen.filter((x) => x.type === 'OrderCancelled')).toHaveLength(1);
  });

  it('payments down: 503 + Retry-After, order left payment_pending; the breaker opens, then recovers', async () => {
    const token = await h.token('customer', 'breaker-customer');
    const order = await createOrder(h, token);
    payments.setFaults({ down: true });
    try {
      const first = await h.call('POST', `/v1/orders/${order.id}/pay`, { token });
      expect(first.status, first.text).toBe(503);
      expect(first.body).toMatchObject({
        code: 'PAYMENTS_UNAVAILABLE',
        type: 'https://oms.dev/problems/payments-unavailable',
      });
      expect(Number(first.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      const stored = await h.call('GET', `/v1/orders/${order.id}`, { token });
      expect(stored.body.order.status).toBe('payment_pending');
      // each pay tries up to 3 times; 5 failures in a row open the breaker
      const breaker = h.app.internals.payments.breaker;
      await until(
        async () => {
          await h.call('POST', `/v1/orders/${order.id}/pay`, { token });
          return breaker.state === 'open';
        },
        { timeoutMs: 20_000, intervalMs: 50, what: 'the payments breaker to open' },
      );
      const listed = await h.call('GET', '/admin/breakers', { token: admin });
      expect(listed.body.breakers).toEqual([{ name: 'payments', state: 'open' }]);
      const requestsBefore = payments.stats().requests;
      const rejected = await h.call('POST', `/v1/orders/${order.id}/pay`, { token });
      expect(rejected.status).toBe(503);
      expect(rejected.body.detail).toContain('ERR_OMS_BREAKER_OPEN');
      expect(payments.stats().requests).toBe(requestsBefore); // open: payments is not called at all
      const health = await h.call('GET', '/health');
      expect(health.body.checks['breaker:payments'][0].observedValue).toBe('open');
    } finally {
      payments.setFaults({ down: false });
    }
    const paid = await until(
      async () => {
        const r = await h.call('POST', `/v1/orders/${order.id}/pay`, { token });
        return r.status === 200 ? r : undefined;
      },
      { timeoutMs: 20_000, intervalMs: 200, what: 'pay to succeed once the breaker lets a probe through' },
    );
    expect(paid.body.order.status).toBe('paid');
    const b = await h.call('GET', '/admin/breakers', { token: admin });
    expect(b.body.breakers).toEqual([{ name: 'payments', state: 'closed' }]);
    expect(payments.charges().filter((c) => c.orderId === order.id)).toHaveLength(1);
  });
});

describe('per-order locks with fencing', () => {
  it('a transition whose lease token is older than the fence stored on the row writes nothing (409 CONFLICT)', async () => {
    const token = await h.token('customer', 'fenced');
    const order = await createOrder(h, token);
    // a holder with a far newer token has written the row: every token this process can hold is older
    await h.app.internals.db
      .updateTable('orders')
      .set({ fence: (2n ** 62n).toString() })
      .where('id', '=', order.id)
      .execute();
    const r = await h.call('POST', `/v1/orders/${order.id}/cancel`, { token });
    expect(r.status).toBe(409);
    expect(r.body).toMatchObject({ code: 'CONFLICT', type: 'https://oms.dev/problems/conflict' });
    const row = await h.call('GET', `/v1/orders/${order.id}`, { token });
    expect(row.body.order).toMatchObject({ status: 'created', version: 1 });
  });

  it('stores the lease token: concurrent pay and cancel of one order serialise, one wins', async () => {
    const token = await h.token('customer', 'racer');
    const order = await createOrder(h, token);
    const [pay, cancel] = await Promise.all([
      h.call('POST', `/v1/orders/${order.id}/pay`, { token }),
      h.call('POST', `/v1/orders/${order.id}/cancel`, { token }),
    ]);
    const final = (await h.call('GET', `/v1/orders/${order.id}`, { token })).body.order;
    if (final.status === 'paid') {
      expect(pay.status).toBe(200);
      expect(cancel.status).toBe(409);
    } else {
      expect(final.status).toBe('cancelled');
      expect(cancel.status).toBe(200);
      expect(pay.status).toBe(409);
    }
    const fence = await h.app.internals.db
      .selectFrom('orders')
      .select('fence')
      .where('id', '=', order.id)
      .executeTakeFirstOrThrow();
    expect(BigInt(fence.fence)).toBeGreaterThan(0n);
  });
});

describe('rate limits', () => {
  it('every response carries RateLimit-Policy/RateLimit for the four scopes; the route scope denies with 429', async () => {
    const token = await h.token('customer', 'rl-customer');
    const started = Date.now();
    let admitted = 0;
    let denied: Awaited<ReturnType<Harness['call']>> | undefined;
    // the bucket refills at ROUTE_LIMIT/min while we send, so count until the first denial
    while (!denied && admitted < ROUTE_LIMIT * 3) {
      const r = await h.call('GET', '/v1/orders', { token });
      if (r.status !== 200) denied = r;
      else {
        admitted++;
        const policy = r.headers.get('ratelimit-policy') ?? '';
        for (const name of ['global', 'principal', 'ip', 'route']) expect(policy).toContain(`"${name}"`);
        expect(r.headers.get('ratelimit')).toMatch(/^"[a-z]+";r=\d+;t=\d+$/);
      }
    }
    const refilled = Math.ceil((((Date.now() - started) / 1000) * ROUTE_LIMIT) / 60);
    expect(admitted).toBeGreaterThanOrEqual(ROUTE_LIMIT);
    expect(admitted).toBeLessThanOrEqual(ROUTE_LIMIT + refilled);
    if (!denied) throw new Error('never denied');
    expect(denied.status).toBe(429);
    expect(denied.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(Number(denied.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(denied.headers.get('ratelimit')).toMatch(/^"route";r=0/);
    expect(denied.body).toMatchObject({
      status: 429,
      scope: 'route',
      code: 'RATE_LIMITED',
      type: 'https://oms.dev/problems/rate-limited',
    });
    // the limiter runs before auth: a refused request is charged and carries the headers too
    const anonymous = await h.call('GET', '/v1/orders');
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get('ratelimit-policy')).toContain('"global"');
    // the scope is per route and principal: another route, or another customer, still passes
    expect((await h.call('GET', '/v1/orders', { token: await h.token('customer', 'rl-other') })).status).toBe(
      200,
    );
    expect(
      (await h.call('POST', '/v1/orders', { token, body: ORDER, headers: { 'idempotency-key': 'rl' } }))
        .status,
    ).toBe(201);
  });
});

describe('maintenance freeze', () => {
  it('writes get 423 with holder, since and eta while frozen; reads pass; writes resume after', async () => {
    const token = await h.token('customer', 'freeze-customer');
    const order = await createOrder(h, token);
    const f = await h.call('POST', '/admin/maintenance/freeze', {
      token: admin,
      body: { reason: 'reindex', etaSec: 120 },
    });
    expect(f.status, f.text).toBe(200);
    expect(f.body).toMatchObject({ frozen: true, holder: expect.stringContaining('admin-1') });
    try {
      for (const [path, body, headers] of [
        ['/v1/orders', ORDER, { 'idempotency-key': 'frozen' }],
        [`/v1/orders/${order.id}/pay`, undefined, {}],
        [`/v1/orders/${order.id}/cancel`, undefined, {}],
      ] as const) {
        const r = await h.call('POST', path, { token, ...(body ? { body } : {}), headers });
        expect(r.status, `${path}: ${r.text}`).toBe(423);
        expect(r.body).toMatchObject({
          code: 'MAINTENANCE',
          type: 'https://oms.dev/problems/maintenance',
          holder: f.body.holder,
          since: f.body.since,
          eta: f.body.eta,
        });
        expect(Number(r.headers.get('retry-after'))).toBeGreaterThan(0);
      }
      expect((await h.call('GET', `/v1/orders/${order.id}`, { token })).status).toBe(200);
    } finally {
      const u = await h.call('DELETE', '/admin/maintenance/freeze', { token: admin });
      expect(u.body).toEqual({ frozen: false });
    }
    const after = await h.call('POST', `/v1/orders/${order.id}/cancel`, { token });
    expect(after.status).toBe(200);
  });
});

describe('backups', () => {
  it('POST /admin/backups creates and verifies a backup, and the app keeps accepting writes after it', {
    timeout: 180_000,
  }, async () => {
    const token = await h.token('customer', 'backup-customer');
    await createOrder(h, token);
    const b = await h.call('POST', '/admin/backups', { token: admin });
    expect(b.status, b.text).toBe(201);
    expect(b.body.verified).toBe(true);
    expect(b.body.manifest.tables.map((t: { name: string }) => t.name)).toContain('orders');
    const list = await h.call('GET', '/admin/backups', { token: admin });
    expect(list.body.backups.map((m: { id: string }) => m.id)).toContain(b.body.manifest.id);
    expect(list.body.status.lastSuccess).toBeTruthy();
    // PGlite's pg_dump must not leave the live instance read-only or without a search_path
    const after = await createOrder(h, token);
    const paid = await h.call('POST', `/v1/orders/${after.id}/pay`, { token });
    expect(paid.status).toBe(200);
    const health = await h.call('GET', '/health');
    expect(health.body.checks['backup:age']).toBeDefined();
  });
});

describe('observability', () => {
  it('/metrics shows every package’s metrics', async () => {
    const r = await h.call('GET', '/metrics');
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toMatch(/^text\/plain/);
    for (const name of [
      'oms_ratelimit_decisions_total',
      'oms_auth_verifications_total',
      'oms_auth_verify_duration',
      'oms_breaker_state',
      'oms_breaker_calls_total',
      'oms_breaker_transitions_total',
      'oms_locks_wait_duration',
      'oms_locks_held',
      'oms_outbox_enqueued_total',
      'oms_outbox_published_total',
      'oms_outbox_backlog',
      'oms_health_check_duration',
      'oms_health_status',
      'oms_backup_duration',
      'oms_backup_last_success',
    ]) {
      expect(r.text, name).toMatch(new RegExp(`^${name}`, 'm'));
    }
  });

  it('echoes X-Request-Id and continues an incoming traceparent', async () => {
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const r = await h.call('GET', '/livez', {
      headers: { 'x-request-id': 'req-abc.123', traceparent: `00-${traceId}-00f067aa0ba902b7-01` },
    });
    expect(r.headers.get('x-request-id')).toBe('req-abc.123');
    expect(r.headers.get('traceparent')).toMatch(new RegExp(`^00-${traceId}-[0-9a-f]{16}-01$`));
    const fresh = await h.call('GET', '/livez');
    expect(fresh.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    expect(fresh.headers.get('traceparent')).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
  });

  it('the probes answer health+json with every dependency check', async () => {
    for (const p of ['/livez', '/readyz', '/startupz']) expect((await h.call('GET', p)).status, p).toBe(200);
    const r = await h.call('GET', '/health');
    expect(r.headers.get('content-type')).toBe('application/health+json');
    expect(Object.keys(r.body.checks)).toEqual(
      expect.arrayContaining(['pglite:responseTime', 'outbox:backlog', 'breaker:payments', 'backup:age']),
    );
  });
});

describe('traces over OTLP (last: it closes the app)', () => {
  it('exports the request spans, with the incoming trace id, to OTEL_EXPORTER_OTLP_ENDPOINT; close flushes them', async () => {
    const traceId = '0af7651916cd43dd8448eb211c80319c';
    await h.call('GET', '/v1/orders', {
      token: await h.token('customer', 'traced'),
      headers: { traceparent: `00-${traceId}-b7ad6b7169203331-01` },
    });
    await h.app.close(); // shuts the SDK down, which flushes the batch
    const all = Buffer.concat(exported.filter((e) => e.path === '/v1/traces').map((e) => e.body));
    expect(all.length).toBeGreaterThan(0);
    expect(all.includes('oms-reference')).toBe(true);
    expect(all.includes(traceId) || all.includes(Buffer.from(traceId, 'hex'))).toBe(true);
  });
});
