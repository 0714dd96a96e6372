import { fakeClock } from '@oms/testkit';
import { describe, expect, it } from 'vitest';
import {
  authorizer,
  createVerifier,
  isOmsAuthError,
  type Jwk,
  localJwks,
  type Revocation,
  type RevocationStore,
  rbac,
  revocationList,
  routePolicy,
  type VerificationEvent,
} from '../src/index.js';
import { AUD, ISS, makeKey, NOW, NOW_MS, sign } from './fixtures/tokens.js';

const codeOf = (p: Promise<unknown>) =>
  p.then(
    () => 'resolved',
    (e: unknown) => (isOmsAuthError(e) ? e.code : `not an OmsAuthError: ${String(e)}`),
  );

/** A store in memory with the same contract as the Redis one: an append-only log read from a cursor. */
function logStore(): RevocationStore & { log: Revocation[]; failing: boolean } {
  const log: Revocation[] = [];
  const store = {
    log,
    failing: false,
    async add(r: Revocation) {
      if (store.failing) throw new Error('store down');
      log.push(r);
    },
    async read(cursor: string | undefined) {
      if (store.failing) throw new Error('store down');
      return { revocations: log.slice(Number(cursor ?? 0)), cursor: String(log.length) };
    },
  };
  return store;
}

async function setup(opts: { store?: RevocationStore; cache?: false } = {}) {
  const key = await makeKey('ES256', 'k1');
  const clock = fakeClock(NOW_MS);
  const revocations = revocationList({ clock, ...(opts.store ? { store: opts.store } : {}) });
  const verifier = createVerifier({
    issuer: ISS,
    audience: AUD,
    algorithms: ['ES256'],
    keys: localJwks({ keys: [key.publicJwk as Jwk] }),
    clock,
    revocations,
    ...(opts.cache === false ? { cache: false as const } : {}),
  });
  const events: VerificationEvent[] = [];
  verifier.on('verification', (e) => events.push(e));
  return { key, clock, revocations, verifier, events };
}

describe('revocationList', () => {
  it.each([
    ['with the cache', {}],
    ['without the cache', { cache: false as const }],
  ])('refuses a token by jti from the next verification on, cached or not (%s)', async (_n, o) => {
    const { key, verifier, revocations } = await setup(o);
    const token = await sign(key, { claims: { jti: 'j-1' } });
    const other = await sign(key, { claims: { jti: 'j-2' } });
    await verifier.verify(token);
    await verifier.verify(other);
    await revocations.revoke({ jti: 'j-1' });
    expect(await codeOf(verifier.verify(token))).toBe('ERR_OMS_AUTH_TOKEN_REVOKED');
    expect(await codeOf(verifier.verify(token))).toBe('ERR_OMS_AUTH_TOKEN_REVOKED');
    expect(await codeOf(verifier.verify(other))).toBe('resolved');
  });

  it('refuses every token of a subject issued before notBefore, and accepts ones issued after', async () => {
    const { key, clock, verifier, revocations } = await setup();
    const before = await sign(key, { claims: { sub: 'alice', iat: NOW - 60 } });
    const noIat = await sign(key, { claims: { sub: 'alice' }, omit: ['iat'] });
    const bob = await sign(key, { claims: { sub: 'bob', iat: NOW - 60 } });
    await verifier.verify(before);
    await revocations.revoke({ subject: 'alice' });
    expect(await codeOf(verifier.verify(before))).toBe('ERR_OMS_AUTH_TOKEN_REVOKED');
    expect(await codeOf(verifier.verify(noIat))).toBe('ERR_OMS_AUTH_TOKEN_REVOKED');
    expect(await codeOf(verifier.verify(bob))).toBe('resolved');
    clock.advance(2_000);
    const after = await sign(key, { claims: { sub: 'alice', iat: NOW + 2 } });
    expect(await codeOf(verifier.verify(after))).toBe('resolved');
  });

  it('drops the cached verifications of what it revokes', async () => {
    const { key, verifier, revocations } = await setup();
    await verifier.verify(await sign(key, { claims: { sub: 'alice', jti: 'a' } }));
    await verifier.verify(await sign(key, { claims: { sub: 'bob', jti: 'b' } }));
    expect(verifier.cacheSize).toBe(2);
    await revocations.revoke({ subject: 'alice' });
    expect(verifier.cacheSize).toBe(1);
  });

  it('forgets a revocation after retainMs, or at the expiresAt given', async () => {
    const clock = fakeClock(NOW_MS);
    const revocations = revocationList({ clock, retainMs: 60_000 });
    await revocations.revoke({ jti: 'short', expiresAt: NOW_MS + 1_000 });
    await revocations.revoke({ subject: 'alice' });
    const principal = (sub: string, jti: string) => ({
      subject: sub,
      roles: [],
      scopes: [],
      claims: { jti, iat: NOW - 1 },
    });
    expect(revocations.check(principal('x', 'short'))?.kind).toBe('jti');
    clock.advance(1_000);
    expect(revocations.check(principal('x', 'short'))).toBeUndefined();
    expect(revocations.check(principal('alice', 'z'))?.kind).toBe('subject');
    clock.advance(59_000);
    expect(revocations.check(principal('alice', 'z'))).toBeUndefined();
  });

  it('refuses bad targets and options with ERR_OMS_AUTH_INVALID_OPTION', async () => {
    const revocations = revocationList();
    for (const t of [
      null,
      {},
      { jti: '' },
      { subject: 7 },
      { subject: 'a', notBefore: Date.now() + 60_000 },
    ]) {
      await expect(revocations.revoke(t as never)).rejects.toMatchObject({
        code: 'ERR_OMS_AUTH_INVALID_OPTION',
      });
    }
    for (const o of [{ pollMs: 0 }, { retainMs: -1 }, { store: {} }]) {
      expect(() => revocationList(o as never)).toThrow(
        expect.objectContaining({ code: 'ERR_OMS_AUTH_INVALID_OPTION' }),
      );
    }
  });

  it('applies what another instance stored, on its next read of the store', async () => {
    const store = logStore();
    const a = await setup({ store });
    const b = await setup({ store });
    const token = await sign(a.key, { claims: { jti: 'shared' } });
    const verifierB = createVerifier({
      issuer: ISS,
      audience: AUD,
      algorithms: ['ES256'],
      keys: localJwks({ keys: [a.key.publicJwk as Jwk] }),
      clock: b.clock,
      revocations: b.revocations,
    });
    expect(await codeOf(verifierB.verify(token))).toBe('resolved');
    await a.revocations.revoke({ jti: 'shared' });
    expect(store.log).toHaveLength(1);
    await b.revocations.sync();
    expect(await codeOf(verifierB.verify(token))).toBe('ERR_OMS_AUTH_TOKEN_REVOKED');
    await Promise.all([a.revocations.close(), b.revocations.close()]);
  });

  it('answers 503 REVOCATIONS_UNAVAILABLE while the store cannot be read for the first time, then verifies', async () => {
    const store = logStore();
    store.failing = true;
    const { key, clock, verifier, revocations } = await setup({ store });
    const token = await sign(key);
    const failed = await verifier.verify(token).catch((e: unknown) => e);
    expect(failed).toMatchObject({ code: 'ERR_OMS_AUTH_REVOCATIONS_UNAVAILABLE', httpStatus: 503 });
    expect((failed as { retryAfterMs?: number }).retryAfterMs).toBeGreaterThanOrEqual(1_000);
    await expect(revocations.revoke({ jti: 'x' })).rejects.toMatchObject({
      code: 'ERR_OMS_AUTH_REVOCATIONS_UNAVAILABLE',
    });
    // within pollMs of the failure the answer comes at once, without another read
    store.failing = false;
    expect(await codeOf(verifier.verify(token))).toBe('ERR_OMS_AUTH_REVOCATIONS_UNAVAILABLE');
    clock.advance(1_000);
    expect(await codeOf(verifier.verify(token))).toBe('resolved');
    expect(revocations.synced).toBe(true);
    await revocations.close();
  });

  it('bounds a first read by timeoutMs: a hung store is a 503, not a hung request', async () => {
    const key = await makeKey('ES256', 'k1');
    const clock = fakeClock(NOW_MS);
    const hung: RevocationStore = { add: async () => {}, read: () => new Promise(() => {}) };
    const verifier = createVerifier({
      issuer: ISS,
      audience: AUD,
      algorithms: ['ES256'],
      keys: localJwks({ keys: [key.publicJwk as Jwk] }),
      clock,
      revocations: revocationList({ store: hung, clock, timeoutMs: 2_000 }),
    });
    const pending = codeOf(verifier.verify(await sign(key)));
    await clock.advanceAsync(2_000);
    expect(await pending).toBe('ERR_OMS_AUTH_REVOCATIONS_UNAVAILABLE');
  });

  it('keeps its view and reports syncError when a later read fails', async () => {
    const store = logStore();
    const { key, verifier, revocations } = await setup({ store });
    await revocations.revoke({ subject: 'user-1' });
    await revocations.sync();
    const errors: unknown[] = [];
    revocations.on('syncError', (e) => errors.push(e.error));
    store.failing = true;
    await expect(revocations.sync()).rejects.toMatchObject({ code: 'ERR_OMS_AUTH_REVOCATIONS_UNAVAILABLE' });
    expect(errors).toHaveLength(1);
    expect(await codeOf(verifier.verify(await sign(key, { claims: { iat: NOW - 5 } })))).toBe(
      'ERR_OMS_AUTH_TOKEN_REVOKED',
    );
    await revocations.close();
  });

  it('refuses a revoked token in authorize() with 401 invalid_token, cache hit or not', async () => {
    const { key, verifier, revocations } = await setup();
    const auth = authorizer({
      verifier,
      routes: routePolicy({ 'GET /v1/orders/:id': 'orders:read' }),
      rbac: rbac({ roles: { clerk: { permissions: ['orders:read'] } } }),
    });
    const req = {
      method: 'GET',
      url: '/v1/orders/1',
      headers: { authorization: `Bearer ${await sign(key, { claims: { jti: 'j' } })}` },
    };
    expect((await auth.authorize(req)).status).toBe(200);
    expect((await auth.authorize(req)).status).toBe(200); // a cache hit
    await revocations.revoke({ jti: 'j' });
    expect(await auth.authorize(req)).toMatchObject({
      status: 401,
      code: 'ERR_OMS_AUTH_TOKEN_REVOKED',
      wwwAuthenticate: 'Bearer error="invalid_token"',
    });
  });
});
