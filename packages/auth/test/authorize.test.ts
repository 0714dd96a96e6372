import { fakeClock } from '@oms/testkit';
import { describe, expect, it } from 'vitest';
import {
  authorizer,
  createVerifier,
  type DecisionEvent,
  type Jwk,
  type KeySource,
  localJwks,
  rbac,
  routePolicy,
} from '../src/index.js';
import { AUD, ISS, makeKey, NOW_MS, sign } from './fixtures/tokens.js';

async function setup(keys?: KeySource) {
  const key = await makeKey('ES256', 'k1');
  const verifier = createVerifier({
    issuer: ISS,
    audience: AUD,
    algorithms: ['ES256'],
    keys: keys ?? localJwks({ keys: [key.publicJwk as Jwk] }),
    clock: fakeClock(NOW_MS),
  });
  const auth = authorizer({
    verifier,
    routes: routePolicy({
      'GET /livez': 'public',
      'GET /v1/orders/:id': { permission: 'orders:read', resource: () => ({ tenant: 'acme' }) },
      'POST /v1/orders/:id/refund': 'orders:refund',
    }),
    rbac: rbac({
      permissions: ['orders:read', 'orders:refund'],
      roles: {
        clerk: { permissions: ['orders:read'] },
        manager: { inherits: ['clerk'], permissions: ['orders:*'] },
      },
    }),
  });
  const decisions: DecisionEvent[] = [];
  auth.on('decision', (d) => decisions.push(d));
  const bearer = async (claims: Record<string, unknown> = {}) => ({
    authorization: `Bearer ${await sign(key, { claims: { tid: 'acme', ...claims } })}`,
  });
  return { auth, decisions, bearer, verifier };
}

describe('authorize', () => {
  it('answers 200 with the principal when a role grants the route permission', async () => {
    const { auth, bearer } = await setup();
    const r = await auth.authorize({ method: 'GET', url: '/v1/orders/1', headers: await bearer() });
    expect(r).toMatchObject({ status: 200, route: 'GET /v1/orders/:id', reason: 'clerk grants orders:read' });
    expect(r.principal?.subject).toBe('user-1');
  });

  it('answers 403 FORBIDDEN when no role grants it, and for a resource of another tenant', async () => {
    const { auth, bearer } = await setup();
    const r = await auth.authorize({ method: 'POST', url: '/v1/orders/1/refund', headers: await bearer() });
    expect(r).toMatchObject({
      status: 403,
      code: 'ERR_OMS_AUTH_FORBIDDEN',
      wwwAuthenticate: 'Bearer error="insufficient_scope"',
    });
    const foreign = await auth.authorize({
      method: 'GET',
      url: '/v1/orders/1',
      headers: await bearer({ tid: 'globex' }),
    });
    expect(foreign).toMatchObject({ status: 403, code: 'ERR_OMS_AUTH_FORBIDDEN' });
    const manager = await auth.authorize({
      method: 'POST',
      url: '/v1/orders/1/refund',
      headers: await bearer({ roles: ['manager'] }),
    });
    expect(manager.status).toBe(200);
  });

  it('answers 401 with the verification code and challenge for bad or missing tokens', async () => {
    const { auth, bearer } = await setup();
    expect(await auth.authorize({ method: 'GET', url: '/v1/orders/1', headers: {} })).toMatchObject({
      status: 401,
      code: 'ERR_OMS_AUTH_TOKEN_MISSING',
      wwwAuthenticate: 'Bearer',
    });
    expect(
      await auth.authorize({
        method: 'GET',
        url: '/v1/orders/1',
        headers: await bearer({ exp: NOW_MS / 1000 - 60 }),
      }),
    ).toMatchObject({
      status: 401,
      code: 'ERR_OMS_AUTH_TOKEN_EXPIRED',
      wwwAuthenticate: 'Bearer error="invalid_token"',
    });
  });

  it('denies unmapped routes and hostile paths with 403 before reading any token', async () => {
    const { auth } = await setup();
    for (const url of [
      '/v1/admin',
      '/v1/orders/1/../../admin',
      '/v1/orders/%2e%2e',
      `/${'x/'.repeat(10_000)}`,
    ]) {
      const r = await auth.authorize({
        method: 'GET',
        url,
        headers: { authorization: 'Bearer not-even-a-token' },
      });
      expect(r, url).toMatchObject({ status: 403, code: 'ERR_OMS_AUTH_ROUTE_DENIED' });
      expect(r.principal).toBeUndefined();
    }
  });

  it('lets public routes through without credentials', async () => {
    const { auth } = await setup();
    expect(await auth.authorize({ method: 'GET', url: '/livez', headers: {} })).toMatchObject({
      status: 200,
      route: 'GET /livez',
    });
  });

  it('answers 503 when the key source cannot be reached', async () => {
    const down: KeySource = {
      kind: 'remote-jwks',
      symmetric: false,
      getKey: async () => {
        const { OmsAuthError } = await import('../src/errors.js');
        throw new OmsAuthError('ERR_OMS_AUTH_KEYS_UNAVAILABLE', 'down', true);
      },
      on: () => () => {},
      close: async () => {},
      [Symbol.asyncDispose]: async () => {},
    };
    const { auth, bearer } = await setup(down);
    expect(
      await auth.authorize({ method: 'GET', url: '/v1/orders/1', headers: await bearer() }),
    ).toMatchObject({
      status: 503,
      code: 'ERR_OMS_AUTH_KEYS_UNAVAILABLE',
    });
  });

  it('emits one decision per request with subject, route, status, code and a token digest, never the token', async () => {
    const { auth, decisions, bearer } = await setup();
    const headers = await bearer();
    await auth.authorize({ method: 'GET', url: '/v1/orders/1', headers });
    await auth.authorize({ method: 'POST', url: '/v1/orders/1/refund', headers });
    await auth.authorize({ method: 'GET', url: '/nope', headers });
    expect(decisions.map((d) => [d.route, d.status, d.code])).toEqual([
      ['GET /v1/orders/:id', 200, undefined],
      ['POST /v1/orders/:id/refund', 403, 'ERR_OMS_AUTH_FORBIDDEN'],
      ['(unmapped)', 403, 'ERR_OMS_AUTH_ROUTE_DENIED'],
    ]);
    expect(decisions[0]).toMatchObject({ subject: 'user-1', method: 'GET' });
    expect(decisions[0]?.tokenDigest).toMatch(/^[0-9a-f]{16}$/);
    // the second request was a cache hit, decided without verifying again: same digest, the token's own
    expect(decisions[1]?.tokenDigest).toBe(decisions[0]?.tokenDigest);
    const { createHash } = await import('node:crypto');
    const expected = createHash('sha256').update(headers.authorization.slice(7)).digest('hex').slice(0, 16);
    expect(decisions[0]?.tokenDigest).toBe(expected);
    expect(decisions[2]?.tokenDigest).toBe(expected);
    const token = headers.authorization.slice(7);
    expect(JSON.stringify(decisions)).not.toContain(token.slice(0, 20));
    expect(JSON.stringify(decisions)).not.toContain(token.split('.')[2]);
  });

  it('never throws for junk requests', async () => {
    const { auth } = await setup();
    for (const req of [null, {}, { method: 'GET' }, { method: 1, url: 2, headers: 3 }]) {
      const r = await auth.authorize(req as never);
      expect([401, 403]).toContain(r.status);
    }
  });
});

describe('denialResponse', () => {
  it('turns decisions into status, challenge, nonce and problem+json, and a 200 into nothing', async () => {
    const { denialResponse } = await import('../src/index.js');
    expect(denialResponse({ status: 200, reason: 'ok' })).toBeUndefined();
    const r401 = denialResponse({
      status: 401,
      code: 'ERR_OMS_AUTH_DPOP_NONCE',
      reason: 'the DPoP proof has no nonce',
      wwwAuthenticate: 'DPoP error="use_dpop_nonce"',
      dpopNonce: 'n-1',
    });
    expect(r401).toMatchObject({
      status: 401,
      headers: {
        'www-authenticate': 'DPoP error="use_dpop_nonce"',
        'dpop-nonce': 'n-1',
        'content-type': 'application/problem+json',
      },
    });
    expect(JSON.parse(r401?.body ?? '')).toEqual({
      type: 'urn:oms:auth:dpop-nonce',
      title: 'Unauthorized',
      status: 401,
      code: 'ERR_OMS_AUTH_DPOP_NONCE',
    });
    expect(r401?.body).not.toContain('has no nonce'); // the reason (which check failed) stays out of the body
    expect(
      denialResponse({ status: 503, code: 'ERR_OMS_AUTH_KEYS_UNAVAILABLE', reason: 'down' })?.headers[
        'retry-after'
      ],
    ).toBe('5');
    // a source that knows when it retries says so; a default can be configured, and a long wait is capped
    const at = (retryAfterMs: number, o?: { retryAfterSec?: number }) =>
      denialResponse({ status: 503, code: 'ERR_OMS_AUTH_KEYS_UNAVAILABLE', reason: 'down', retryAfterMs }, o)
        ?.headers['retry-after'];
    expect(at(29_001)).toBe('30');
    expect(at(3_600_000)).toBe('300');
    expect(at(Number.NaN, { retryAfterSec: 12 })).toBe('12');
    expect(() => at(1, { retryAfterSec: 0 })).toThrow(
      expect.objectContaining({ code: 'ERR_OMS_AUTH_INVALID_OPTION' }),
    );
  });
});
