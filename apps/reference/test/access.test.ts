import { assertEveryRouteMapped, authPlugin } from '@oms/auth/fastify';
import Fastify from 'fastify';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROUTES, routes } from '../src/policy.js';
import { createOrder, type Harness, ORDER, startEmbedded } from './helpers.js';

// Every route × every role, on the real HTTP stack (embedded). "allowed" means the request got past
// authentication and authorization (any status but 401/403); "denied" means a 403 from the route policy/RBAC.

let h: Harness;
const tokens: Record<'customer' | 'support' | 'admin', string> = { customer: '', support: '', admin: '' };
const ROLES = ['customer', 'support', 'admin'] as const;
let own: string; // customer-1's order
const logs: string[] = [];

beforeAll(async () => {
  h = await startEmbedded({ LOG_LEVEL: 'info' }, logs);
  for (const r of ROLES) tokens[r] = await h.token(r, `${r}-1`);
  own = (await createOrder(h, tokens.customer)).id;
});
afterAll(async () => {
  await h?.close();
});

type Who = (typeof ROLES)[number];
interface Case {
  route: keyof typeof ROUTES;
  allowed: readonly Who[];
  /** The request to send: path and body per role (each role gets its own order where it matters). */
  send(role: Who): Promise<{ path: string; body?: unknown; headers?: Record<string, string> }>;
}

const orderOf = async (_role: Who) => (await createOrder(h, tokens.customer)).id;
const ALL = ROLES;
const PUBLIC = (path: string) => async () => ({ path });

const CASES: Case[] = [
  {
    route: 'POST /v1/orders',
    allowed: ['customer', 'admin'],
    send: async () => ({
      path: '/v1/orders',
      body: ORDER,
      headers: { 'idempotency-key': crypto.randomUUID() },
    }),
  },
  { route: 'GET /v1/orders', allowed: ALL, send: async () => ({ path: '/v1/orders' }) },
  { route: 'GET /v1/orders/:id', allowed: ALL, send: async () => ({ path: `/v1/orders/${own}` }) },
  {
    route: 'POST /v1/orders/:id/pay',
    allowed: ['customer', 'admin'],
    send: async (r) => ({ path: `/v1/orders/${await orderOf(r)}/pay` }),
  },
  {
    route: 'POST /v1/orders/:id/cancel',
    allowed: ALL,
    send: async (r) => ({ path: `/v1/orders/${await orderOf(r)}/cancel` }),
  },
  // an invalid body: an allowed caller gets the 400, so no freeze is taken
  {
    route: 'POST /admin/maintenance/freeze',
    allowed: ['admin'],
    send: async () => ({ path: '/admin/maintenance/freeze', body: {} }),
  },
  {
    route: 'DELETE /admin/maintenance/freeze',
    allowed: ['admin'],
    send: async () => ({ path: '/admin/maintenance/freeze' }),
  },
  // an unknown query parameter: an allowed caller gets the 400, so no backup runs (features.test.ts runs one)
  {
    route: 'POST /admin/backups',
    allowed: ['admin'],
    send: async () => ({ path: '/admin/backups?dryRun=1' }),
  },
  { route: 'GET /admin/backups', allowed: ['admin'], send: async () => ({ path: '/admin/backups' }) },
  {
    route: 'GET /admin/audit/verify',
    allowed: ['admin'],
    send: async () => ({ path: '/admin/audit/verify' }),
  },
  {
    route: 'GET /admin/notifications',
    allowed: ['support', 'admin'],
    send: async () => ({ path: '/admin/notifications' }),
  },
  {
    route: 'GET /admin/breakers',
    allowed: ['support', 'admin'],
    send: async () => ({ path: '/admin/breakers' }),
  },
  { route: 'GET /metrics', allowed: ALL, send: PUBLIC('/metrics') },
  ...(['livez', 'readyz', 'startupz', 'health'] as const).flatMap((p): Case[] => [
    { route: `GET /${p}`, allowed: ALL, send: PUBLIC(`/${p}`) },
    ...(['POST', 'PUT', 'PATCH', 'DELETE'] as const).map(
      (m): Case => ({ route: `${m} /${p}`, allowed: ALL, send: PUBLIC(`/${p}`) }),
    ),
  ]),
];

describe('every route × every role', () => {
  it('the table covers every route the policy maps', () => {
    expect(CASES.map((c) => c.route).sort()).toEqual(Object.keys(ROUTES).sort());
  });

  for (const c of CASES) {
    const [method, pattern] = c.route.split(' ') as [string, string];
    for (const role of ROLES) {
      const expected = c.allowed.includes(role) ? 'allowed' : 'denied';
      it(`${c.route} as ${role}: ${expected}`, { timeout: 120_000 }, async () => {
        const req = await c.send(role);
        const r = await h.call(method, req.path, {
          token: tokens[role],
          ...(req.body !== undefined ? { body: req.body } : {}),
          ...(req.headers ? { headers: req.headers } : {}),
        });
        if (expected === 'allowed')
          expect([401, 403], `${c.route} as ${role}: ${r.status} ${r.text}`).not.toContain(r.status);
        else {
          expect(r.status, `${c.route} as ${role}: ${r.text}`).toBe(403);
          expect(r.headers.get('content-type')).toMatch(/^application\/problem\+json/);
        }
      });
    }
    if (!ROUTES[c.route].startsWith('public') && ROUTES[c.route] !== 'public') {
      it(`${c.route} without a token: 401 with WWW-Authenticate`, async () => {
        const path = pattern.replace(':id', own);
        const r = await h.call(method, path);
        expect(r.status).toBe(401);
        expect(r.headers.get('www-authenticate')).toMatch(/^Bearer/);
        expect(r.body.code).toBe('ERR_OMS_AUTH_TOKEN_MISSING');
      });
    }
  }

  it("a customer gets 403 on another customer's order, for read, pay and cancel", async () => {
    const other = await h.token('customer', 'customer-2');
    for (const [m, p] of [
      ['GET', `/v1/orders/${own}`],
      ['POST', `/v1/orders/${own}/pay`],
      ['POST', `/v1/orders/${own}/cancel`],
    ] as const) {
      const r = await h.call(m, p, { token: other });
      expect(r.status, `${m} ${p}`).toBe(403);
      expect(r.body).toMatchObject({ code: 'FORBIDDEN', type: 'https://oms.dev/problems/forbidden' });
    }
    const mine = await h.call('GET', `/v1/orders/${own}`, { token: tokens.customer });
    expect(mine.body.order.status).not.toBe('cancelled');
  });

  it('a customer lists only their own orders; support lists everyone', async () => {
    const other = await h.token('customer', 'customer-3');
    await createOrder(h, other);
    const mine = await h.call('GET', '/v1/orders?limit=100', { token: other });
    expect(mine.body.orders.length).toBe(1);
    expect(mine.body.orders.every((o: { customerId: string }) => o.customerId === 'customer-3')).toBe(true);
    const all = await h.call('GET', '/v1/orders?limit=100', { token: tokens.support });
    const owners = new Set(all.body.orders.map((o: { customerId: string }) => o.customerId));
    expect(owners.has('customer-1') && owners.has('customer-3')).toBe(true);
  });

  it('an unknown path is denied by the policy before any token is read', async () => {
    const r = await h.call('GET', '/v1/secret', { token: tokens.admin });
    expect(r.status).toBe(403);
    expect(r.body.code).toBe('ERR_OMS_AUTH_ROUTE_DENIED');
  });
});

describe('no route without a policy', () => {
  it("every route Fastify declared resolves to a rule (enumerated from Fastify's onRoute)", () => {
    const declared = h.app.internals.declaredRoutes;
    expect(declared.length).toBeGreaterThan(20);
    const unmapped = declared.filter((r) => {
      const [m, p] = r.split(' ') as [string, string];
      return routes.resolve(m, p).kind === 'deny';
    });
    expect(unmapped).toEqual([]);
    expect(() => assertEveryRouteMapped(h.app.fastify, routes)).not.toThrow();
  });

  it('a route added without a rule fails the check, naming it', async () => {
    const app = Fastify();
    await app.register(authPlugin, {
      authorizer: { authorize: async () => ({ status: 200, reason: 'x' }), on: () => () => {} },
    });
    app.get('/v1/orders/:id', async () => ({}));
    app.get('/v1/forgotten', async () => ({}));
    await app.ready();
    expect(() => assertEveryRouteMapped(app, routes)).toThrow(/GET \/v1\/forgotten/);
    await app.close();
  });
});

describe('validation and errors', () => {
  it('an invalid body is a 400 problem+json naming the field', async () => {
    const r = await h.call('POST', '/v1/orders', {
      token: tokens.customer,
      body: { items: [{ sku: 'a', quantity: 0, unitPriceCents: 1 }], currency: 'EUR' },
      headers: { 'idempotency-key': 'bad-body' },
    });
    expect(r.status).toBe(400);
    expect(r.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(r.body).toMatchObject({
      type: 'https://oms.dev/problems/validation',
      code: 'VALIDATION',
      status: 400,
    });
    expect(JSON.stringify(r.body.errors)).toContain('/items/0/quantity');
  });

  it('a missing Idempotency-Key is a 400; unknown fields are refused, not dropped', async () => {
    const r = await h.call('POST', '/v1/orders', { token: tokens.customer, body: ORDER });
    expect(r.status).toBe(400);
    expect(r.body.detail).toContain('idempotency-key');
    const extra = await h.call('POST', '/v1/orders', {
      token: tokens.customer,
      body: { ...ORDER, discount: 100 },
      headers: { 'idempotency-key': 'extra' },
    });
    expect(extra.status).toBe(400);
  });

  it('an unknown order is a 404 problem+json', async () => {
    const r = await h.call('GET', '/v1/orders/ord_missing', { token: tokens.admin });
    expect(r.status).toBe(404);
    expect(r.body).toMatchObject({ code: 'NOT_FOUND', type: 'https://oms.dev/problems/not-found' });
  });
});

describe('logs', () => {
  it('are JSON lines; the ones of a request carry its trace_id, and the start line names every backend', async () => {
    const r = await h.call('GET', `/v1/orders/${own}`, {
      token: tokens.support,
      headers: { 'x-request-id': 'log-me' },
    });
    const traceId = r.headers.get('traceparent')?.split('-')[1];
    const lines = logs.map((l) => JSON.parse(l) as Record<string, unknown>);
    const mine = lines.filter((l) => l.reqId === 'log-me');
    expect(mine.length).toBeGreaterThanOrEqual(2); // incoming request, request completed
    for (const l of mine) expect(l.trace_id, JSON.stringify(l)).toBe(traceId);
    const startLine = lines.find((l) => typeof l.msg === 'string' && l.msg.startsWith('backends:'));
    expect(startLine?.backends).toMatchObject({
      database: expect.stringContaining('pglite'),
      rateLimitStore: 'memory',
      breakerStore: 'memory',
      locks: 'memory',
      outboxPublisher: 'in-process',
      backupSource: 'pgliteSource',
    });
    expect(logs.join('\n')).not.toContain(tokens.support); // tokens never reach the logs
  });
});

describe('idempotent creation', () => {
  it('20 concurrent identical POSTs with one key create exactly one order', async () => {
    const token = await h.token('customer', 'customer-idem');
    const key = crypto.randomUUID();
    const replies = await Promise.all(
      Array.from({ length: 20 }, () =>
        h.call('POST', '/v1/orders', { token, body: ORDER, headers: { 'idempotency-key': key } }),
      ),
    );
    const statuses = replies.map((r) => r.status).sort((a, b) => a - b);
    expect(statuses).toEqual([...Array(19).fill(200), 201]);
    expect(new Set(replies.map((r) => r.body.order.id)).size).toBe(1);
    expect(replies.filter((r) => r.headers.get('idempotent-replayed') === 'true').length).toBe(19);
    const rows = await h.app.internals.db
      .selectFrom('orders')
      .select((e) => e.fn.countAll<string>().as('n'))
      .where('customer_id', '=', 'customer-idem')
      .executeTakeFirstOrThrow();
    expect(Number(rows.n)).toBe(1);
  });

  it('the same key with another body is 422 IDEMPOTENCY_KEY_REUSED', async () => {
    const token = await h.token('customer', 'customer-idem2');
    const key = crypto.randomUUID();
    await h.call('POST', '/v1/orders', { token, body: ORDER, headers: { 'idempotency-key': key } });
    const r = await h.call('POST', '/v1/orders', {
      token,
      body: { ...ORDER, currency: 'USD' },
      headers: { 'idempotency-key': key },
    });
    expect(r.status).toBe(422);
    expect(r.body.code).toBe('IDEMPOTENCY_KEY_REUSED');
  });
});

describe('audit log', () => {
  it('records every decision, hash-chained, and verify detects an edited row', async () => {
    await h.call('GET', `/v1/orders/${own}`, { token: tokens.customer });
    await h.call('GET', '/admin/backups', { token: tokens.customer }); // a denial is audited too
    const ok = await h.call('GET', '/admin/audit/verify', { token: tokens.admin });
    expect(ok.body.ok).toBe(true);
    expect(ok.body.rows).toBeGreaterThan(10);
    const db = h.app.internals.db;
    const denied = await db
      .selectFrom('audit_log')
      .select(['seq', 'entry'])
      .where('entry', 'like', '%"status":403%')
      .orderBy('seq')
      .executeTakeFirstOrThrow();
    // the attacker flips a denial into an allow
    await sql`update audit_log set entry = replace(entry, '"status":403', '"status":200') where seq = ${denied.seq}`.execute(
      db,
    );
    const broken = await h.call('GET', '/admin/audit/verify', { token: tokens.admin });
    expect(broken.body).toMatchObject({ ok: false, brokenAt: String(denied.seq) });
    await sql`update audit_log set entry = ${denied.entry} where seq = ${denied.seq}`.execute(db);
    const again = await h.call('GET', '/admin/audit/verify', { token: tokens.admin });
    expect(again.body.ok).toBe(true);
  });
});
