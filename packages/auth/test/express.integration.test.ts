import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fakeClock, until } from '@oms/testkit';
import express from 'express';
import { afterEach, describe, expect, expectTypeOf, it } from 'vitest';
import { authMiddleware } from '../src/express/index.js';
import {
  type Authorizer,
  authorizer,
  createVerifier,
  hmacSecret,
  isOmsAuthError,
  type KeySource,
  type Principal,
  rbac,
  remoteJwks,
  routePolicy,
} from '../src/index.js';
import { jwksServer } from './fixtures/jwks-server.js';
import { AUD, ISS, makeKey, NOW, NOW_MS, SECRET, secretBytes, sign } from './fixtures/tokens.js';

const routes = routePolicy({
  'GET /livez': 'public',
  'GET /api/v1/orders/:id': 'orders:read',
  'POST /api/v1/orders/:id/refund': 'orders:refund',
  'GET /api/v1/tenants/:tenant/orders': {
    permission: 'orders:read',
    resource: (p) => ({ tenant: p.tenant }),
  },
});

const servers: Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }
});

/** An Express 5 app on 127.0.0.1 behind authMiddleware; the order routes sit on a router mounted at /api. */
async function setup(o: { keys?: KeySource; algorithms?: ['ES256'] } = {}) {
  const verifier = createVerifier({
    issuer: ISS,
    audience: AUD,
    algorithms: o.algorithms ?? ['HS256'],
    keys: o.keys ?? hmacSecret(SECRET),
    clock: fakeClock(NOW_MS),
    clockToleranceSec: 0,
  });
  const access = rbac({
    permissions: ['orders:read', 'orders:refund'],
    roles: { clerk: { permissions: ['orders:read'] }, manager: { permissions: ['orders:*'] } },
  });
  const app = express();
  const handled: string[] = [];
  app.use(authMiddleware({ authorizer: authorizer({ verifier, routes, rbac: access }), realm: 'orders' }));
  app.get('/livez', (req, res) => {
    handled.push('livez');
    res.json({ principal: req.principal ?? null });
  });
  const api = express.Router();
  api.get('/v1/orders/:id', (req, res) => {
    handled.push('read');
    expectTypeOf(req.principal).toEqualTypeOf<Principal | undefined>();
    const subject: string | undefined = req.principal?.subject;
    res.json({ subject, id: req.params.id });
  });
  api.post('/v1/orders/:id/refund', (_req, res) => {
    handled.push('refund');
    res.json({ refunded: true });
  });
  api.get('/v1/tenants/:tenant/orders', (req, res) => {
    handled.push('tenant');
    res.json({ tenant: req.principal?.tenant });
  });
  api.get('/v1/unmapped', (_req, res) => {
    handled.push('unmapped');
    res.json({ leaked: true });
  });
  app.use('/api', api);
  const server = createServer(app);
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const call = async (path: string, init: RequestInit & { token?: string } = {}) => {
    const headers = new Headers(init.headers);
    if (init.token !== undefined) headers.set('authorization', `Bearer ${init.token}`);
    const res = await fetch(`${base}${path}`, { ...init, headers });
    const text = await res.text();
    return {
      status: res.status,
      headers: res.headers,
      text,
      json: () => JSON.parse(text) as Record<string, unknown>,
    };
  };
  return { call, handled };
}

const token = (claims: Record<string, unknown> = {}) => sign(secretBytes, { claims });

describe('@oms/auth/express over real HTTP', () => {
  it('lets a public route through without a token and leaves req.principal unset', async () => {
    const { call } = await setup();
    const r = await call('/livez');
    expect(r.status).toBe(200);
    expect(r.json()).toEqual({ principal: null });
  });

  it('puts the verified principal on req.principal, resolving the route from the full path under a mount', async () => {
    const { call } = await setup();
    const r = await call('/api/v1/orders/42', { token: await token({ sub: 'alice' }) });
    expect(r.status).toBe(200);
    expect(r.json()).toEqual({ subject: 'alice', id: '42' });
  });

  it('answers 401 with a bare Bearer challenge when the token is missing, before the handler runs', async () => {
    const { call, handled } = await setup();
    const r = await call('/api/v1/orders/42');
    expect(r.status).toBe(401);
    expect(r.headers.get('www-authenticate')).toBe('Bearer realm="orders"');
    expect(r.headers.get('content-type')).toBe('application/problem+json');
    expect(r.headers.get('cache-control')).toBe('no-store');
    expect(r.json()).toMatchObject({ status: 401, code: 'ERR_OMS_AUTH_TOKEN_MISSING' });
    expect(handled).toEqual([]);
  });

  it.each([
    ['expired', () => token({ exp: NOW - 60 }), 'ERR_OMS_AUTH_TOKEN_EXPIRED'],
    [
      'badly signed',
      () => sign(new TextEncoder().encode('another-secret-of-at-least-32-bytes!!')),
      'ERR_OMS_AUTH_SIGNATURE',
    ],
  ])(
    'answers 401 invalid_token for an %s token, with no description of the failed check',
    async (_, make, code) => {
      const { call, handled } = await setup();
      const r = await call('/api/v1/orders/42', { token: await make() });
      expect(r.status).toBe(401);
      expect(r.headers.get('www-authenticate')).toBe('Bearer realm="orders", error="invalid_token"');
      expect(r.json()).toEqual({
        type: expect.stringMatching(/^urn:oms:auth:/),
        title: 'Unauthorized',
        status: 401,
        code,
      });
      expect(handled).toEqual([]);
    },
  );

  it('answers 403 problem+json when no role grants the route permission', async () => {
    const { call, handled } = await setup();
    const r = await call('/api/v1/orders/42/refund', {
      method: 'POST',
      token: await token({ roles: ['clerk'] }),
    });
    expect(r.status).toBe(403);
    expect(r.headers.get('content-type')).toBe('application/problem+json');
    expect(r.headers.get('www-authenticate')).toBe('Bearer realm="orders", error="insufficient_scope"');
    expect(r.json()).toMatchObject({ title: 'Forbidden', status: 403, code: 'ERR_OMS_AUTH_FORBIDDEN' });
    expect(handled).toEqual([]);
    const ok = await call('/api/v1/orders/42/refund', {
      method: 'POST',
      token: await token({ roles: ['manager'] }),
    });
    expect(ok.status).toBe(200);
  });

  it('denies a declared route the policy does not map, an unknown path and a hostile one, with 403', async () => {
    const { call, handled } = await setup();
    for (const path of ['/api/v1/unmapped', '/no/such/route', '/api/v1/orders/..%2Funmapped']) {
      const r = await call(path, { token: await token() });
      expect(r.status, path).toBe(403);
      expect(r.json(), path).toMatchObject({ code: 'ERR_OMS_AUTH_ROUTE_DENIED' });
    }
    expect(handled).toEqual([]);
  });

  it("feeds the path's parameters to the rule's resource (tenant isolation)", async () => {
    const { call } = await setup();
    const t = await token({ tenant: 'acme' });
    expect((await call('/api/v1/tenants/acme/orders', { token: t })).json()).toEqual({ tenant: 'acme' });
    const other = await call('/api/v1/tenants/globex/orders', { token: t });
    expect(other.status).toBe(403);
    expect(other.json()).toMatchObject({ code: 'ERR_OMS_AUTH_FORBIDDEN' });
  });

  it('answers 503 with Retry-After, never 401, while the JWKS server on 127.0.0.1 is down', async () => {
    const key = await makeKey('ES256', 'k1');
    const idp = await jwksServer([key.publicJwk]);
    await idp.stop();
    const keys = remoteJwks(idp.url, { timeoutMs: 2_000, cooldownMs: 60_000 });
    const { call, handled } = await setup({ keys, algorithms: ['ES256'] });
    try {
      for (let i = 0; i < 3; i++) {
        const r = await call('/api/v1/orders/42', { token: await sign(key) });
        expect(r.status, `request ${i}`).toBe(503);
        // the key source's remaining cooldown (60 s), not a fixed guess
        expect(r.headers.get('retry-after')).toMatch(/^\d+$/);
        expect(Number(r.headers.get('retry-after'))).toBeGreaterThan(30);
        expect(Number(r.headers.get('retry-after'))).toBeLessThanOrEqual(60);
        expect(r.headers.get('www-authenticate')).toBeNull();
        expect(r.json()).toMatchObject({ status: 503, code: 'ERR_OMS_AUTH_KEYS_UNAVAILABLE' });
      }
      expect(handled).toEqual([]);
    } finally {
      await keys.close();
    }
  });

  it("aborts the authorizer's signal when the client hangs up while it waits", async () => {
    const signals: AbortSignal[] = [];
    const hanging: Authorizer = {
      authorize: (_req, o) => {
        if (o?.signal) signals.push(o.signal);
        return new Promise(() => {}); // a JWKS fetch that never ends
      },
      on: () => () => {},
    };
    const app = express();
    app.use(authMiddleware({ authorizer: hanging }));
    const server = createServer(app);
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const client = new AbortController();
    const port = (server.address() as AddressInfo).port;
    const pending = fetch(`http://127.0.0.1:${port}/livez`, { signal: client.signal }).catch(() => 'aborted');
    await until(() => signals.length === 1, { what: 'the middleware to call authorize' });
    expect(signals[0]?.aborted).toBe(false);
    client.abort();
    expect(await pending).toBe('aborted');
    await until(() => signals[0]?.aborted, { what: "the authorizer's signal to abort" });
  });

  it('refuses a missing authorizer or a realm that cannot be quoted, at construction', () => {
    const auth = authorizer({
      verifier: createVerifier({
        issuer: ISS,
        audience: AUD,
        algorithms: ['HS256'],
        keys: hmacSecret(SECRET),
      }),
      routes,
      rbac: rbac({ roles: {} }),
    });
    for (const opts of [{ authorizer: auth, realm: 'a"b' }, {} as { authorizer: typeof auth }]) {
      let err: unknown;
      try {
        authMiddleware(opts);
      } catch (e) {
        err = e;
      }
      expect(isOmsAuthError(err) && err.code).toBe('ERR_OMS_AUTH_INVALID_OPTION');
    }
  });
});
