import { exportJWK, generateKeyPair } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  createVerifier,
  type DpopNonceSource,
  dpop,
  isOmsAuthError,
  type Jwk,
  localJwks,
  memoryReplayStore,
  type Verifier,
} from '../src/index.js';
import { type ProofKey, proof, proofKey } from './fixtures/dpop.js';
import { AUD, b64, ISS, makeKey, sign, type TestKey } from './fixtures/tokens.js';

const URL_ = 'https://api.example.com/v1/orders/1';
let issuer: TestKey;
let client: ProofKey;
let other: ProofKey;

beforeAll(async () => {
  issuer = await makeKey('ES256', 'idp-1');
  client = await proofKey();
  other = await proofKey();
});

function setup(o: { nonce?: DpopNonceSource } = {}) {
  const verifier: Verifier = createVerifier({
    issuer: ISS,
    audience: AUD,
    algorithms: ['ES256'],
    keys: localJwks({ keys: [issuer.publicJwk as Jwk] }),
    dpop: dpop({
      replayStore: memoryReplayStore(),
      htuFrom: { origin: 'https://api.example.com' },
      algorithms: ['ES256'],
      iatWindowSec: 60,
      ...(o.nonce ? { nonce: o.nonce } : {}),
    }),
  });
  return verifier;
}

/** A DPoP-bound access token for `client` (cnf.jkt), valid now. */
const boundToken = (jkt = client.jkt) =>
  sign(issuer, {
    claims: { iat: Math.floor(Date.now() / 1000), exp: Math.floor(Date.now() / 1000) + 600, cnf: { jkt } },
  });

async function request(token: string, p: string, extra: Record<string, string> = {}) {
  return {
    method: 'GET',
    url: '/v1/orders/1?expand=lines',
    headers: { authorization: `DPoP ${token}`, dpop: p, ...extra },
  };
}

const outcome = async (verifier: Verifier, req: Promise<Parameters<Verifier['verifyRequest']>[0]>) =>
  verifier.verifyRequest(await req).then(
    (p) => `ok ${p.subject}`,
    (e: unknown) => (isOmsAuthError(e) ? e.code : `not an OmsAuthError: ${String(e)}`),
  );

describe('DPoP (RFC 9449 §4.3)', () => {
  it('accepts a proof that passes every check', async () => {
    const v = setup();
    const t = await boundToken();
    expect(await outcome(v, request(t, await proof(client, { accessToken: t })))).toBe('ok user-1');
  });

  const failing: [string, (t: string) => Promise<string>, string][] = [
    ['(1) a proof that is not a JWT', async () => 'not-a-jwt', 'ERR_OMS_AUTH_DPOP'],
    ['(2) a JWE as the proof', async () => 'a.b.c.d.e', 'ERR_OMS_AUTH_DPOP'],
    [
      '(4) typ jwt instead of dpop+jwt',
      (t) => proof(client, { accessToken: t, header: { typ: 'jwt' } }),
      'ERR_OMS_AUTH_DPOP',
    ],
    ['(4) no typ', (t) => proof(client, { accessToken: t, header: { typ: undefined } }), 'ERR_OMS_AUTH_DPOP'],
    [
      '(5) alg none',
      async (t) =>
        `${b64({ alg: 'none', typ: 'dpop+jwt', jwk: client.jwk })}.${b64({ htm: 'GET', htu: URL_, iat: Math.floor(Date.now() / 1000), jti: 'x', ath: t })}.`,
      'ERR_OMS_AUTH_DPOP',
    ],
    [
      '(5) a symmetric alg',
      async () => `${b64({ alg: 'HS256', typ: 'dpop+jwt', jwk: client.jwk })}.${b64({ htm: 'GET' })}.c2ln`,
      'ERR_OMS_AUTH_DPOP',
    ],
    [
      '(6) a signature by another key than the embedded jwk',
      (t) => proof(client, { accessToken: t, signWith: other.privateKey }),
      'ERR_OMS_AUTH_DPOP',
    ],
    [
      '(6) no jwk header',
      (t) => proof(client, { accessToken: t, header: { jwk: undefined } }),
      'ERR_OMS_AUTH_DPOP',
    ],
    [
      '(7) a jwk with private key material',
      async (t) => {
        const { privateKey } = await generateKeyPair('ES256', { extractable: true });
        const priv = await exportJWK(privateKey);
        return proof(client, { accessToken: t, header: { jwk: { ...client.jwk, d: priv.d } } });
      },
      'ERR_OMS_AUTH_DPOP',
    ],
    ['(3) no jti', (t) => proof(client, { accessToken: t, omit: ['jti'] }), 'ERR_OMS_AUTH_DPOP'],
    ['(3) no htm', (t) => proof(client, { accessToken: t, omit: ['htm'] }), 'ERR_OMS_AUTH_DPOP'],
    ['(3) no htu', (t) => proof(client, { accessToken: t, omit: ['htu'] }), 'ERR_OMS_AUTH_DPOP'],
    ['(3) no iat', (t) => proof(client, { accessToken: t, omit: ['iat'] }), 'ERR_OMS_AUTH_DPOP'],
    ['(8) htm POST on a GET', (t) => proof(client, { accessToken: t, htm: 'POST' }), 'ERR_OMS_AUTH_DPOP'],
    ['(8) htm in lower case', (t) => proof(client, { accessToken: t, htm: 'get' }), 'ERR_OMS_AUTH_DPOP'],
    [
      '(9) htu of another host',
      (t) => proof(client, { accessToken: t, htu: 'https://evil.test/v1/orders/1' }),
      'ERR_OMS_AUTH_DPOP',
    ],
    [
      '(9) htu of another path',
      (t) => proof(client, { accessToken: t, htu: 'https://api.example.com/v1/orders/2' }),
      'ERR_OMS_AUTH_DPOP',
    ],
    [
      '(9) htu over http',
      (t) => proof(client, { accessToken: t, htu: 'http://api.example.com/v1/orders/1' }),
      'ERR_OMS_AUTH_DPOP',
    ],
    [
      '(11) iat 2 minutes old',
      (t) => proof(client, { accessToken: t, iat: Math.floor(Date.now() / 1000) - 120 }),
      'ERR_OMS_AUTH_DPOP',
    ],
    [
      '(11) iat 2 minutes ahead',
      (t) => proof(client, { accessToken: t, iat: Math.floor(Date.now() / 1000) + 120 }),
      'ERR_OMS_AUTH_DPOP',
    ],
    ['(12) no ath', () => proof(client), 'ERR_OMS_AUTH_DPOP'],
    [
      '(12) ath of another token',
      () => proof(client, { accessToken: 'another.token.value' }),
      'ERR_OMS_AUTH_DPOP',
    ],
    [
      '(13) a proof by a key the token is not bound to',
      (t) => proof(other, { accessToken: t }),
      'ERR_OMS_AUTH_DPOP_BINDING',
    ],
  ];

  it.each(failing)('refuses %s', async (_name, make, code) => {
    const v = setup();
    const t = await boundToken();
    expect(await outcome(v, request(t, await make(t)))).toBe(code);
  });

  it('passes htu with the query dropped and the default port normalized (9)', async () => {
    const v = setup();
    const t = await boundToken();
    expect(
      await outcome(
        v,
        request(t, await proof(client, { accessToken: t, htu: 'https://API.example.com:443/v1/orders/1' })),
      ),
    ).toBe('ok user-1');
  });

  it('never reads the Host header for htu: a proof for the Host an attacker sends is refused', async () => {
    const v = setup();
    const t = await boundToken();
    const forged = await proof(client, { accessToken: t, htu: 'https://evil.test/v1/orders/1' });
    expect(await outcome(v, request(t, forged, { host: 'evil.test', 'x-forwarded-host': 'evil.test' }))).toBe(
      'ERR_OMS_AUTH_DPOP',
    );
    const honest = await proof(client, { accessToken: t });
    expect(await outcome(v, request(t, honest, { host: 'evil.test' }))).toBe('ok user-1');
  });

  it('accepts iat inside the window on both sides (11)', async () => {
    const v = setup();
    const t = await boundToken();
    const now = Math.floor(Date.now() / 1000);
    expect(await outcome(v, request(t, await proof(client, { accessToken: t, iat: now - 50 })))).toBe(
      'ok user-1',
    );
    expect(await outcome(v, request(t, await proof(client, { accessToken: t, iat: now + 50 })))).toBe(
      'ok user-1',
    );
  });

  it('refuses a replayed proof (jti), and a failed proof burns no jti', async () => {
    const v = setup();
    const t = await boundToken();
    const p = await proof(client, { accessToken: t, jti: 'once' });
    expect(await outcome(v, request(t, p))).toBe('ok user-1');
    expect(await outcome(v, request(t, p))).toBe('ERR_OMS_AUTH_DPOP_REPLAY');
    const bad = await proof(client, { accessToken: t, jti: 'twice', htm: 'POST' });
    expect(await outcome(v, request(t, bad))).toBe('ERR_OMS_AUTH_DPOP');
    expect(await outcome(v, request(t, await proof(client, { accessToken: t, jti: 'twice' })))).toBe(
      'ok user-1',
    );
  });

  it('requires the server nonce when configured (10), answering use_dpop_nonce with the nonce to use', async () => {
    let current = 'n-1';
    const v = setup({ nonce: { current: () => current, accepts: (n) => n === current } });
    const t = await boundToken();
    const err = await v
      .verifyRequest(await request(t, await proof(client, { accessToken: t })))
      .catch((e: unknown) => e);
    expect(err).toMatchObject({
      code: 'ERR_OMS_AUTH_DPOP_NONCE',
      httpStatus: 401,
      dpopNonce: 'n-1',
      wwwAuthenticate: 'DPoP error="use_dpop_nonce"',
    });
    expect(await outcome(v, request(t, await proof(client, { accessToken: t, nonce: 'n-1' })))).toBe(
      'ok user-1',
    );
    current = 'n-2';
    expect(await outcome(v, request(t, await proof(client, { accessToken: t, nonce: 'n-1' })))).toBe(
      'ERR_OMS_AUTH_DPOP_NONCE',
    );
  });

  it('refuses the DPoP scheme with an unbound token, without a proof, or with two proofs', async () => {
    const v = setup();
    const unbound = await sign(issuer, {
      claims: { iat: Math.floor(Date.now() / 1000), exp: Math.floor(Date.now() / 1000) + 600 },
    });
    expect(await outcome(v, request(unbound, await proof(client, { accessToken: unbound })))).toBe(
      'ERR_OMS_AUTH_DPOP_BINDING',
    );
    const t = await boundToken();
    expect(
      await outcome(
        v,
        Promise.resolve({ method: 'GET', url: '/v1/orders/1', headers: { authorization: `DPoP ${t}` } }),
      ),
    ).toBe('ERR_OMS_AUTH_DPOP');
    const p = await proof(client, { accessToken: t });
    expect(
      await outcome(
        v,
        Promise.resolve({
          method: 'GET',
          url: '/v1/orders/1',
          headers: { authorization: `DPoP ${t}`, dpop: [p, p] },
        }),
      ),
    ).toBe('ERR_OMS_AUTH_MALFORMED');
  });

  it('refuses a bound token presented as Bearer', async () => {
    const v = setup();
    const t = await boundToken();
    expect(
      await outcome(
        v,
        Promise.resolve({ method: 'GET', url: '/v1/orders/1', headers: { authorization: `Bearer ${t}` } }),
      ),
    ).toBe('ERR_OMS_AUTH_DPOP_BINDING');
  });

  it('refuses unsafe options at construction', () => {
    const store = memoryReplayStore();
    const bad = [
      { replayStore: store, htuFrom: { origin: 'https://api.example.com/path' } },
      { replayStore: store, htuFrom: { origin: 'not a url' } },
      { replayStore: store, htuFrom: { origin: 'https://api.example.com' }, algorithms: ['HS256'] },
      { replayStore: store, htuFrom: { origin: 'https://api.example.com' }, algorithms: [] },
      { htuFrom: { origin: 'https://api.example.com' } },
    ];
    for (const o of bad)
      expect(() => dpop(o as never)).toThrow(
        expect.objectContaining({ code: 'ERR_OMS_AUTH_INVALID_OPTION' }),
      );
  });
});
