import { generateKeyPairSync } from 'node:crypto';
import { fakeClock } from '@oms/testkit';
import { exportJWK, generateKeyPair } from 'jose';
import { describe, expect, it } from 'vitest';
import {
  type Claims,
  createVerifier,
  hmacSecret,
  isOmsAuthError,
  type Jwk,
  localJwks,
  type VerificationEvent,
  type VerifierOptions,
} from '../src/index.js';
import { AUD, ISS, makeKey, NOW, NOW_MS, parts, SECRET, secretBytes, sign } from './fixtures/tokens.js';

async function setup(extra: Partial<VerifierOptions> = {}) {
  const key = await makeKey('ES256', 'es-1');
  const clock = fakeClock(NOW_MS);
  const verifier = createVerifier({
    issuer: ISS,
    audience: AUD,
    algorithms: ['ES256'],
    keys: localJwks({ keys: [key.publicJwk as Jwk] }),
    clock,
    ...extra,
  });
  const events: VerificationEvent[] = [];
  verifier.on('verification', (e) => events.push(e));
  return { key, clock, verifier, events };
}

const codeOf = (p: Promise<unknown>) =>
  p.then(
    () => 'resolved',
    (e: unknown) => (isOmsAuthError(e) ? e.code : `not an OmsAuthError: ${String(e)}`),
  );

describe('createVerifier refuses unsafe configuration', () => {
  const keys = localJwks({ keys: [{ kty: 'EC', crv: 'P-256', x: 'AA', y: 'AA' }] });
  const base = { issuer: ISS, audience: AUD, keys, algorithms: ['ES256'] } as VerifierOptions;
  it.each([
    ['no algorithms', { algorithms: undefined }],
    ['an empty allow-list', { algorithms: [] }],
    ['none', { algorithms: ['none'] }],
    ['None', { algorithms: ['None'] }],
    ['an unknown algorithm', { algorithms: ['XS256'] }],
    ['HS256 with a public key source', { algorithms: ['HS256', 'ES256'] }],
    ['RS256 with an HMAC secret', { algorithms: ['RS256'], keys: hmacSecret(SECRET) }],
    ['no issuer', { issuer: undefined }],
    ['an empty issuer', { issuer: '' }],
    ['an empty audience list', { audience: [] }],
    ['no keys', { keys: undefined }],
    ['a non-integer maxTokenBytes', { maxTokenBytes: 1.5 }],
    ['a negative clock tolerance', { clockToleranceSec: -1 }],
    ['an empty typ', { typ: '' }],
    ['requiredClaims that are not strings', { requiredClaims: [1] }],
    ['cache.maxEntries 0', { cache: { maxEntries: 0 } }],
  ])('refuses %s', (_name, patch) => {
    expect(() => createVerifier({ ...base, ...(patch as object) } as VerifierOptions)).toThrow(
      expect.objectContaining({ code: 'ERR_OMS_AUTH_INVALID_OPTION' }),
    );
  });

  it('refuses HMAC secrets shorter than 32 bytes, empty ones included', () => {
    for (const s of ['', 'short', 'x'.repeat(31), new Uint8Array(16)]) {
      expect(() => hmacSecret(s)).toThrow(expect.objectContaining({ code: 'ERR_OMS_AUTH_INVALID_OPTION' }));
    }
    expect(() => hmacSecret('x'.repeat(32))).not.toThrow();
  });

  it('refuses a local JWKS with private, secret, encryption or incomplete keys', async () => {
    const { privateKey } = await generateKeyPair('ES256', { extractable: true });
    const priv = await exportJWK(privateKey);
    for (const k of [
      priv,
      { kty: 'oct', k: 'c2VjcmV0' },
      { kty: 'EC', crv: 'P-256', x: 'AA', y: 'AA', use: 'enc' },
      { kty: 'RSA', e: 'AQAB' },
    ]) {
      expect(() => localJwks({ keys: [k as Jwk] })).toThrow(
        expect.objectContaining({ code: 'ERR_OMS_AUTH_INVALID_OPTION' }),
      );
    }
    expect(() => localJwks({ keys: [] })).toThrow(
      expect.objectContaining({ code: 'ERR_OMS_AUTH_INVALID_OPTION' }),
    );
  });
});

describe('Ed448', () => {
  it('is refused at construction with a message naming why: jose 6 verifies EdDSA with Ed25519 only', () => {
    const jwk = generateKeyPairSync('ed448').publicKey.export({ format: 'jwk' }) as Jwk;
    expect(jwk.crv).toBe('Ed448');
    for (const build of [
      () => localJwks({ keys: [jwk] }),
      () => localJwks({ keys: [{ ...jwk, alg: 'EdDSA' }] }),
      () =>
        createVerifier({
          issuer: ISS,
          audience: AUD,
          algorithms: ['Ed448' as never],
          keys: localJwks({
            keys: [generateKeyPairSync('ed25519').publicKey.export({ format: 'jwk' }) as Jwk],
          }),
        }),
    ]) {
      expect(build).toThrow(
        expect.objectContaining({
          code: 'ERR_OMS_AUTH_INVALID_OPTION',
          message: expect.stringMatching(/Ed448.*Ed25519/),
        }),
      );
    }
  });

  it('verifies Ed25519 (EdDSA) tokens', async () => {
    const key = await makeKey('EdDSA', 'ed-1');
    const verifier = createVerifier({
      issuer: ISS,
      audience: AUD,
      algorithms: ['EdDSA'],
      keys: localJwks({ keys: [key.publicJwk as Jwk] }),
      clock: fakeClock(NOW_MS),
    });
    expect((await verifier.verify(await sign(key))).subject).toBe('user-1');
  });
});

describe('verify', () => {
  it('resolves to the default principal: sub, roles, scope, tid', async () => {
    const { key, verifier } = await setup();
    const p = await verifier.verify(
      await sign(key, { claims: { roles: ['clerk', 'auditor'], scope: 'a:b c:d', tid: 'acme' } }),
    );
    expect(p).toMatchObject({
      subject: 'user-1',
      roles: ['clerk', 'auditor'],
      scopes: ['a:b', 'c:d'],
      tenant: 'acme',
    });
    expect(p.claims.iss).toBe(ISS);
    expect(Object.isFrozen(p) && Object.isFrozen(p.roles) && Object.isFrozen(p.claims)).toBe(true);
  });

  it('reads scp arrays and the tenant claim, and leaves tenant out when there is none', async () => {
    const { key, verifier } = await setup();
    const p = await verifier.verify(
      await sign(key, { claims: { scope: undefined, scp: ['x:y'], tenant: 't2' } }),
    );
    expect(p.scopes).toEqual(['x:y']);
    expect(p.tenant).toBe('t2');
    const q = await verifier.verify(await sign(key, { claims: { sub: 'u2' } }));
    expect('tenant' in q).toBe(false);
  });

  it('maps claims with toPrincipal, and refuses tokens it cannot map with ERR_OMS_AUTH_CLAIMS', async () => {
    const { key, verifier } = await setup({
      toPrincipal: (c: Claims) => ({ subject: String(c.email), roles: ['user'], scopes: [], claims: c }),
    });
    expect((await verifier.verify(await sign(key, { claims: { email: 'a@b.c' } }))).subject).toBe('a@b.c');
    const failing = await setup({
      toPrincipal: () => {
        throw new Error('no');
      },
    });
    expect(await codeOf(failing.verifier.verify(await sign(failing.key)))).toBe('ERR_OMS_AUTH_CLAIMS');
    const plain = await setup();
    expect(await codeOf(plain.verifier.verify(await sign(plain.key, { omit: ['sub'] })))).toBe(
      'ERR_OMS_AUTH_CLAIMS',
    );
  });

  it('enforces typ where configured, accepting the application/ form', async () => {
    const { key, verifier } = await setup({ typ: 'at+jwt' });
    await expect(verifier.verify(await sign(key, { header: { typ: 'at+jwt' } }))).resolves.toBeDefined();
    await expect(
      verifier.verify(await sign(key, { header: { typ: 'application/AT+JWT' } })),
    ).resolves.toBeDefined();
    expect(await codeOf(verifier.verify(await sign(key, { header: { typ: 'JWT' } })))).toBe(
      'ERR_OMS_AUTH_TYP',
    );
    expect(await codeOf(verifier.verify(await sign(key)))).toBe('ERR_OMS_AUTH_TYP');
  });

  it('requires requiredClaims', async () => {
    const { key, verifier } = await setup({ requiredClaims: ['jti'] });
    expect(await codeOf(verifier.verify(await sign(key)))).toBe('ERR_OMS_AUTH_CLAIMS');
    await expect(verifier.verify(await sign(key, { claims: { jti: 'j1' } }))).resolves.toBeDefined();
  });

  it('applies clockToleranceSec to exp and nbf', async () => {
    const { key, verifier } = await setup({ clockToleranceSec: 30 });
    await expect(verifier.verify(await sign(key, { claims: { exp: NOW - 29 } }))).resolves.toBeDefined();
    expect(await codeOf(verifier.verify(await sign(key, { claims: { exp: NOW - 30 } })))).toBe(
      'ERR_OMS_AUTH_TOKEN_EXPIRED',
    );
    await expect(verifier.verify(await sign(key, { claims: { nbf: NOW + 30 } }))).resolves.toBeDefined();
    expect(await codeOf(verifier.verify(await sign(key, { claims: { nbf: NOW + 31 } })))).toBe(
      'ERR_OMS_AUTH_TOKEN_NOT_YET_VALID',
    );
  });

  it('honours maxTokenBytes before decoding anything', async () => {
    const { key, verifier } = await setup({ maxTokenBytes: 200 });
    const token = await sign(key, { claims: { pad: 'x'.repeat(300) } });
    expect(await codeOf(verifier.verify(token))).toBe('ERR_OMS_AUTH_TOO_LARGE');
  });

  it('verifies HS256 with an HMAC secret and refuses a token signed with another secret', async () => {
    const verifier = createVerifier({
      issuer: ISS,
      audience: AUD,
      algorithms: ['HS256'],
      keys: hmacSecret(secretBytes),
      clock: fakeClock(NOW_MS),
    });
    expect((await verifier.verify(await sign(secretBytes))).subject).toBe('user-1');
    const other = new TextEncoder().encode('another-secret-that-is-32-bytes-long');
    expect(await codeOf(verifier.verify(await sign(other)))).toBe('ERR_OMS_AUTH_SIGNATURE');
    expect(await codeOf(verifier.verify(await sign(secretBytes, { header: { alg: 'HS512' } })))).toBe(
      'ERR_OMS_AUTH_ALG_NOT_ALLOWED',
    );
  });
});

describe('the verification cache', () => {
  it('answers a repeated token from the cache with the same frozen principal', async () => {
    const { key, verifier, events } = await setup();
    const token = await sign(key);
    const a = await verifier.verify(token);
    const b = await verifier.verify(token);
    expect(b).toBe(a);
    expect(events.map((e) => [e.outcome, e.cached])).toEqual([
      ['ok', false],
      ['ok', true],
    ]);
    expect(verifier.cacheSize).toBe(1);
  });

  it('never answers for a token that differs from a cached one in any part (no cache confusion)', async () => {
    const { key, verifier } = await setup();
    const token = await sign(key);
    await verifier.verify(token);
    const [h, p, s] = parts(token);
    const other = parts(await sign(key, { claims: { sub: 'admin' } }));
    const mutants = [
      `${h}.${other[1]}.${s}`, // same header and signature, another payload
      `${h}.${p}.${other[2]}`, // same header and payload, another signature
      `${h}.${p}.${s.slice(0, -2)}`, // truncated signature
      `${h}.${p}.${s.slice(0, -1)}${s.endsWith('A') ? 'B' : 'A'}`, // last character changed
    ];
    for (const m of mutants) expect(await codeOf(verifier.verify(m))).toBe('ERR_OMS_AUTH_SIGNATURE');
    expect(verifier.cacheSize).toBe(1);
  });

  it('answers only for the identical string when another token ends in the same characters', async () => {
    const { key, verifier, events } = await setup();
    const token = await sign(key);
    await verifier.verify(token);
    const [h, , s] = parts(token);
    const other = parts(await sign(key, { claims: { sub: 'admin' } }));
    // the verified token's last 12 characters in front of another payload and signature head
    const lookalike = `${h}.${other[1]}.${other[2].slice(0, -12)}${s.slice(-12)}`;
    events.length = 0;
    expect(await codeOf(verifier.verify(lookalike))).toBe('ERR_OMS_AUTH_SIGNATURE');
    expect(await codeOf(verifier.verify(`e${token}`))).toBe('ERR_OMS_AUTH_MALFORMED'); // same tail, longer
    expect(events.map((e) => e.cached)).toEqual([false, false]);
    expect((await verifier.verify(token)).subject).toBe('user-1');
    expect(events[2]?.cached).toBe(true);
  });

  it('drops an entry at its token exp, even with tolerance and a long maxTtlMs', async () => {
    const { key, clock, verifier, events } = await setup({
      cache: { maxTtlMs: 3_600_000 },
      clockToleranceSec: 0,
    });
    const token = await sign(key, { claims: { exp: NOW + 10 } });
    await verifier.verify(token);
    clock.advance(9_999);
    await verifier.verify(token);
    clock.advance(1);
    expect(await codeOf(verifier.verify(token))).toBe('ERR_OMS_AUTH_TOKEN_EXPIRED');
    expect(events.map((e) => e.cached)).toEqual([false, true, false]);
  });

  it('bounds an entry by maxTtlMs when exp is far away', async () => {
    const { key, clock, verifier, events } = await setup({ cache: { maxTtlMs: 1_000 } });
    const token = await sign(key, { claims: { exp: NOW + 1e9 } });
    await verifier.verify(token);
    clock.advance(1_000);
    await verifier.verify(token);
    expect(events.map((e) => e.cached)).toEqual([false, false]);
  });

  it('is bounded, least recently used first', async () => {
    const { key, verifier, events } = await setup({ cache: { maxEntries: 2 } });
    const [t1, t2, t3] = await Promise.all([1, 2, 3].map((i) => sign(key, { claims: { sub: `u${i}` } })));
    await verifier.verify(t1 as string);
    await verifier.verify(t2 as string);
    await verifier.verify(t1 as string); // t1 is now the most recent
    await verifier.verify(t3 as string); // evicts t2
    expect(verifier.cacheSize).toBe(2);
    events.length = 0;
    await verifier.verify(t1 as string);
    await verifier.verify(t2 as string);
    expect(events.map((e) => e.cached)).toEqual([true, false]);
  });

  it('never caches a failure: a refused token is checked again every time', async () => {
    const { key, verifier, events } = await setup();
    const expired = await sign(key, { claims: { exp: NOW - 100 } });
    for (let i = 0; i < 3; i++)
      expect(await codeOf(verifier.verify(expired))).toBe('ERR_OMS_AUTH_TOKEN_EXPIRED');
    expect(verifier.cacheSize).toBe(0);
    expect(events.every((e) => !e.cached && e.outcome === 'ERR_OMS_AUTH_TOKEN_EXPIRED')).toBe(true);
  });

  it('revoke({ jti }) and revoke({ subject }) drop entries so the next verify runs in full', async () => {
    const { key, verifier, events } = await setup();
    const a = await sign(key, { claims: { jti: 'j-1', sub: 'alice' } });
    const b = await sign(key, { claims: { jti: 'j-2', sub: 'alice' } });
    const c = await sign(key, { claims: { jti: 'j-3', sub: 'bob' } });
    for (const t of [a, b, c]) await verifier.verify(t);
    expect(verifier.revoke({ jti: 'j-3' })).toBe(1);
    expect(verifier.revoke({ subject: 'alice' })).toBe(2);
    expect(verifier.revoke({ subject: 'nobody' })).toBe(0);
    events.length = 0;
    await verifier.verify(a);
    expect(events[0]?.cached).toBe(false);
  });

  it('can be turned off', async () => {
    const { key, verifier, events } = await setup({ cache: false });
    const token = await sign(key);
    await verifier.verify(token);
    await verifier.verify(token);
    expect(events.map((e) => e.cached)).toEqual([false, false]);
    expect(verifier.cacheSize).toBe(0);
  });
});

describe('verifyRequest', () => {
  it('reads Bearer from Authorization, case-insensitively, from plain objects and Headers', async () => {
    const { key, verifier } = await setup();
    const token = await sign(key);
    expect((await verifier.verifyRequest({ headers: { authorization: `Bearer ${token}` } })).subject).toBe(
      'user-1',
    );
    expect((await verifier.verifyRequest({ headers: { authorization: `bearer   ${token}` } })).subject).toBe(
      'user-1',
    );
    expect(
      (await verifier.verifyRequest({ headers: new Headers({ Authorization: `Bearer ${token}` }) })).subject,
    ).toBe('user-1');
  });

  it('refuses two Authorization headers, in any form', async () => {
    const { key, verifier } = await setup();
    const token = await sign(key);
    expect(
      await codeOf(
        verifier.verifyRequest({ headers: { authorization: [`Bearer ${token}`, `Bearer ${token}`] } }),
      ),
    ).toBe('ERR_OMS_AUTH_MALFORMED');
    const h = new Headers();
    h.append('authorization', `Bearer ${token}`);
    h.append('authorization', `Bearer ${token}`);
    expect(await codeOf(verifier.verifyRequest({ headers: h }))).toBe('ERR_OMS_AUTH_MALFORMED');
  });

  it('answers a request without a token with TOKEN_MISSING and a bare Bearer challenge', async () => {
    const { verifier } = await setup();
    const err = await verifier.verifyRequest({ headers: {} }).catch((e: unknown) => e);
    expect(err).toMatchObject({
      code: 'ERR_OMS_AUTH_TOKEN_MISSING',
      httpStatus: 401,
      wwwAuthenticate: 'Bearer',
    });
    expect(await codeOf(verifier.verifyRequest({ headers: { authorization: 'Basic dXNlcjpwYXNz' } }))).toBe(
      'ERR_OMS_AUTH_TOKEN_MISSING',
    );
  });

  it('reads a configured cookie or header, Authorization first', async () => {
    const { key, verifier } = await setup({ credentials: { cookie: 'session', header: 'X-Access-Token' } });
    const token = await sign(key, { claims: { sub: 'from-cookie' } });
    const other = await sign(key, { claims: { sub: 'from-header' } });
    expect(
      (await verifier.verifyRequest({ headers: { cookie: `a=1; session=${token}; b=2` } })).subject,
    ).toBe('from-cookie');
    expect((await verifier.verifyRequest({ headers: { 'x-access-token': other } })).subject).toBe(
      'from-header',
    );
    expect(
      (
        await verifier.verifyRequest({
          headers: { authorization: `Bearer ${other}`, cookie: `session=${token}` },
        })
      ).subject,
    ).toBe('from-header');
    expect(
      await codeOf(verifier.verifyRequest({ headers: { cookie: `session=${token}; session=${other}` } })),
    ).toBe('ERR_OMS_AUTH_MALFORMED');
  });

  it('gives bad input a typed error, never a crash: odd bytes, a 1 MB header, no headers', async () => {
    const { verifier } = await setup();
    const cases: unknown[] = [
      { headers: { authorization: 'Bearer \u0000\u0001\u00ff\ud800.x.y' } },
      { headers: { authorization: `Bearer ${'a'.repeat(1 << 20)}` } },
      { headers: { authorization: 'Bearer' } },
      { headers: { authorization: 'Bearer a.b.c, Bearer d.e.f' } },
      { headers: { authorization: 42 } },
      { headers: null },
      null,
      { headers: { authorization: ['x'] } },
    ];
    const codes = [];
    for (const c of cases) codes.push(await codeOf(verifier.verifyRequest(c as never)));
    expect(codes).toEqual([
      'ERR_OMS_AUTH_MALFORMED',
      'ERR_OMS_AUTH_TOO_LARGE',
      'ERR_OMS_AUTH_MALFORMED',
      'ERR_OMS_AUTH_MALFORMED',
      'ERR_OMS_AUTH_MALFORMED',
      'ERR_OMS_AUTH_MALFORMED',
      'ERR_OMS_AUTH_MALFORMED',
      'ERR_OMS_AUTH_MALFORMED',
    ]);
  });

  it('refuses a DPoP-bound token presented with the Bearer scheme, or to verify()', async () => {
    const { key, verifier } = await setup();
    const token = await sign(key, { claims: { cnf: { jkt: 'abc' } } });
    expect(await codeOf(verifier.verifyRequest({ headers: { authorization: `Bearer ${token}` } }))).toBe(
      'ERR_OMS_AUTH_DPOP_BINDING',
    );
    expect(await codeOf(verifier.verify(token))).toBe('ERR_OMS_AUTH_DPOP_BINDING');
  });
});

describe('verifyRequest on a real node:http server', () => {
  it('refuses a request with two Authorization headers, which Node folds to the first in req.headers', async () => {
    const { createServer } = await import('node:http');
    const { connect } = await import('node:net');
    const { key, verifier } = await setup();
    const token = await sign(key);
    const seen: string[] = [];
    const server = createServer(async (req, res) => {
      const r = await verifier
        .verifyRequest({
          method: req.method ?? '',
          url: req.url ?? '',
          headers: req.headers,
          rawHeaders: req.rawHeaders,
        })
        .then(
          () => 'ok',
          (e: unknown) => (isOmsAuthError(e) ? e.code : String(e)),
        );
      seen.push(`${typeof req.headers.authorization} ${r}`);
      res.end(r);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as { port: number };
    const send = (headers: string) =>
      new Promise<string>((resolve, reject) => {
        const s = connect(port, '127.0.0.1', () =>
          s.write(`GET /v1 HTTP/1.1\r\nHost: x\r\n${headers}Connection: close\r\n\r\n`),
        );
        let body = '';
        s.on('data', (d) => {
          body += String(d);
        });
        s.on('end', () => resolve(body.split('\r\n\r\n')[1] ?? ''));
        s.on('error', reject);
      });
    expect(await send(`Authorization: Bearer ${token}\r\n`)).toBe('ok');
    expect(await send(`Authorization: Bearer ${token}\r\nauthorization: Bearer ${token}\r\n`)).toBe(
      'ERR_OMS_AUTH_MALFORMED',
    );
    expect(seen[1]).toBe('string ERR_OMS_AUTH_MALFORMED'); // Node did fold them into one string
    await new Promise<void>((r) => server.close(() => r()));
  });
});
