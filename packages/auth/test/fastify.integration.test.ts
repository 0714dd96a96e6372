import { fakeClock, until } from '@oms/testkit';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterEach, describe, expect, expectTypeOf, it } from 'vitest';
import { assertEveryRouteMapped, authPlugin } from '../src/fastify/index.js';
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
  'GET /v1/orders/:id': 'orders:read',
  'POST /v1/orders/:id/refund': 'orders:refund',
  'GET /v1/invoices/:n': 'orders:read',
  'GET /v1/tenants/:tenant/orders': { permission: 'orders:read', resource: (p) => ({ tenant: p.tenant }) },
});

const apps: FastifyInstance[] = [];
afterEach(async () => {
  for (const app of apps.splice(0)) await app.close();
});

/** A Fastify app on 127.0.0.1 behind authPlugin, with a handler per route that reports what it saw. */
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
  const app = Fastify({ ignoreTrailingSlash: true });
  apps.push(app);
  await app.register(authPlugin, {
    authorizer: authorizer({ verifier, routes, rbac: access }),
    realm: 'orders',
  });
  const handled: string[] = [];
  app.get('/livez', async (request) => {
    handled.push('livez');
    return { principal: request.principal ?? null };
  });
  app.get('/v1/orders/:id', async (request) => {
    handled.push('read');
    expectTypeOf(request.principal).toEqualTypeOf<Principal | undefined>();
    const subject: string | undefined = request.principal?.subject;
    return { subject, id: (request.params as { id: string }).id };
  });
  app.post('/v1/orders/:id/refund', async () => {
    handled.push('refund');
    return { refunded: true };
  });
  app.get('/v1/tenants/:tenant/orders', async (request) => {
    handled.push('tenant');
    return { tenant: request.principal?.tenant };
  });
  app.get('/v1/invoices/:n(^\\d+)', async (request) => ({ n: (request.params as { n: string }).n }));
  app.get('/v1/unmapped', async () => {
    handled.push('unmapped');
    return { leaked: true };
  });
  const base = await app.listen({ port: 0, host: '127.0.0.1' });
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
  return { app, call, handled };
}

const token = (claims: Record<string, unknown> = {}) => sign(secretBytes, { claims });

describe('@oms/auth/fastify over real HTTP', () => {
  it('lets a public route through without a token and leaves request.principal unset', async () => {
    const { call } = await setup();
    const r = await call('/livez');
    expect(r.status).toBe(200);
    expect(r.json()).toEqual({ principal: null });
  });

  it('puts the verified principal on request.principal for a permitted route', async () => {
    const { call } = await setup();
    const r = await call('/v1/orders/42', { token: await token({ sub: 'alice' }) });
    expect(r.status).toBe(200);
    expect(r.json()).toEqual({ subject: 'alice', id: '42' });
  });

  it('answers 401 with a bare Bearer challenge when the token is missing, before the handler runs', async () => {
    const { call, handled } = await setup();
    const r = await call('/v1/orders/42');
    expect(r.status).toBe(401);
    expect(r.headers.get('www-authenticate')).toBe('Bearer realm="orders"');
    expect(r.headers.get('content-type')).toBe('application/problem+json');
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
      const r = await call('/v1/orders/42', { token: await make() });
      expect(r.status).toBe(401);
      expect(r.headers.get('www-authenticate')).toBe('Bearer realm="orders", error="invalid_token"');
      expect(r.headers.get('www-authenticate')).not.toContain('error_description');
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
    const r = await call('/v1/orders/42/refund', {
      method: 'POST',
      token: await token({ roles: ['clerk'] }),
    });
    expect(r.status).toBe(403);
    expect(r.headers.get('content-type')).toBe('application/problem+json');
    expect(r.headers.get('www-authenticate')).toBe('Bearer realm="orders", error="insufficient_scope"');
    expect(r.json()).toMatchObject({ title: 'Forbidden', status: 403, code: 'ERR_OMS_AUTH_FORBIDDEN' });
    expect(handled).toEqual([]);
    const ok = await call('/v1/orders/42/refund', {
      method: 'POST',
      token: await token({ roles: ['manager'] }),
    });
    expect(ok.status).toBe(200);
  });

  it('denies a declared route the policy does not map, and an unknown path, with 403 before any token is read', async () => {
    const { call, handled } = await setup();
    for (const path of ['/v1/unmapped', '/no/such/route']) {
      const r = await call(path, { token: await token() });
      expect(r.status, path).toBe(403);
      expect(r.json(), path).toMatchObject({ code: 'ERR_OMS_AUTH_ROUTE_DENIED' });
    }
    expect(handled).toEqual([]);
  });

  it("decides by Fastify's matched pattern and feeds request.params to the rule's resource", async () => {
    const { call } = await setup();
    const t = await token({ tenant: 'acme' });
    // ignoreTrailingSlash: Fastify runs /v1/orders/:id for this path, so its rule applies (the bare path would not map).
    expect((await call('/v1/orders/42/', { token: t })).status).toBe(200);
    expect((await call('/v1/tenants/acme/orders', { token: t })).json()).toEqual({ tenant: 'acme' });
    // A parameter's regular expression is not part of the policy's spelling: /v1/invoices/:n maps it.
    expect((await call('/v1/invoices/7', { token: t })).json()).toEqual({ n: '7' });
    expect((await call('/v1/invoices/7')).status).toBe(401);
    const other = await call('/v1/tenants/globex/orders', { token: t });
    expect(other.status).toBe(403);
    expect(other.json()).toMatchObject({ code: 'ERR_OMS_AUTH_FORBIDDEN' });
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
    const app = Fastify();
    apps.push(app);
    await app.register(authPlugin, { authorizer: hanging });
    app.get('/livez', async () => 'ok');
    const base = await app.listen({ port: 0, host: '127.0.0.1' });
    const client = new AbortController();
    const pending = fetch(`${base}/livez`, { signal: client.signal }).catch(() => 'aborted');
    await until(() => signals.length === 1, { what: 'the hook to call authorize' });
    expect(signals[0]?.aborted).toBe(false);
    client.abort();
    expect(await pending).toBe('aborted');
    await until(() => signals[0]?.aborted, { what: "the authorizer's signal to abort" });
  });

  it('answers 503 with Retry-After, never 401, while the JWKS server on 127.0.0.1 is down', async () => {
    const key = await makeKey('ES256', 'k1');
    const idp = await jwksServer([key.publicJwk]);
    await idp.stop();
    const keys = remoteJwks(idp.url, { timeoutMs: 2_000, cooldownMs: 60_000 });
    const { call, handled } = await setup({ keys, algorithms: ['ES256'] });
    try {
      for (let i = 0; i < 3; i++) {
        const r = await call('/v1/orders/42', { token: await sign(key) });
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

  it('refuses a realm that cannot be quoted, when registered', async () => {
    const app = Fastify();
    apps.push(app);
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
    const err = await app.register(authPlugin, { authorizer: auth, realm: 'a"b' }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isOmsAuthError(err) && err.code).toBe('ERR_OMS_AUTH_INVALID_OPTION');
  });
});

describe('assertEveryRouteMapped', () => {
  async function appWith(declare: (app: FastifyInstance) => void) {
    const app = Fastify();
    apps.push(app);
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
    await app.register(authPlugin, { authorizer: auth });
    declare(app);
    await app.ready();
    return app;
  }

  it('passes when the policy maps every registered route, the HEAD routes Fastify adds included', async () => {
    const app = await appWith((a) => {
      a.get('/livez', async () => 'ok');
      a.get('/v1/orders/:id', async () => ({}));
      a.get('/v1/invoices/:n(^\\d+)', async () => ({}));
      a.register(async (child) => child.post('/:id/refund', async () => ({})), { prefix: '/v1/orders' });
    });
    expect(() => assertEveryRouteMapped(app, routes)).not.toThrow();
  });

  it('fails on purpose, naming every registered route the policy does not map, encapsulated ones included', async () => {
    const app = await appWith((a) => {
      a.get('/livez', async () => 'ok');
      a.get('/v1/orders/:id', async () => ({}));
      a.delete('/v1/orders/:id', async () => ({}));
      a.register(
        async (child) => {
          child.post('/', async () => ({}));
          child.route({ method: ['GET', 'PUT'], url: '/:id/notes', handler: async () => ({}) });
        },
        { prefix: '/v1/orders' },
      );
    });
    let err: unknown;
    try {
      assertEveryRouteMapped(app, routes);
    } catch (e) {
      err = e;
    }
    expect(isOmsAuthError(err) && err.code).toBe('ERR_OMS_AUTH_INVALID_OPTION');
    const message = (err as Error).message;
    for (const route of [
      'DELETE /v1/orders/:id',
      'POST /v1/orders',
      'GET /v1/orders/:id/notes',
      'HEAD /v1/orders/:id/notes',
      'PUT /v1/orders/:id/notes',
    ]) {
      expect(message).toContain(route);
    }
    expect(message).toContain('for 5 declared route(s)');
    expect(message).not.toContain('/livez');
    expect(message).not.toContain('GET /v1/orders/:id,');
  });

  it('refuses an app where routes were declared before authPlugin, rather than passing with them unseen', async () => {
    const app = Fastify();
    apps.push(app);
    app.get('/early', async () => 'unseen by onRoute');
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
    await app.register(authPlugin, { authorizer: auth });
    app.get('/livez', async () => 'ok');
    await app.ready();
    expect(() => assertEveryRouteMapped(app, routes)).toThrow(/register it before any route/);
    // Deny by default still holds for the early route at run time.
    expect((await app.inject('/early')).statusCode).toBe(403);
  });

  it('refuses an app where authPlugin was not registered, rather than passing with no routes seen', async () => {
    const app = Fastify();
    apps.push(app);
    app.get('/anything', async () => 'ok');
    await app.ready();
    expect(() => assertEveryRouteMapped(app, routes)).toThrow(/authPlugin registered/);
  });
});

describe('authPlugin as a Fastify plugin', () => {
  it('is named @oms/auth, so other plugins can depend on it', async () => {
    const app = Fastify();
    apps.push(app);
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
    await app.register(authPlugin, { authorizer: auth });
    const dependent = Object.assign(async () => {}, {
      [Symbol.for('plugin-meta')]: { name: 'needs-auth', dependencies: ['@oms/auth'] },
    });
    await app.register(dependent);
    expect(app.hasPlugin('@oms/auth')).toBe(true);
  });
});
