import { createPrivateKey, createPublicKey, createSign } from 'node:crypto';
import { fakeClock } from '@oms/testkit';
import { CompactEncrypt, exportJWK, generateKeyPair } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  type AuthErrorCode,
  createVerifier,
  isOmsAuthError,
  type JwkSet,
  localJwks,
  type Verifier,
} from '../src/index.js';
import {
  AUD,
  b64,
  claimsAt,
  craft,
  hs256,
  ISS,
  makeKey,
  NOW,
  NOW_MS,
  parts,
  sign,
  type TestKey,
} from './fixtures/tokens.js';

// Tokens from RFC 8725, the OWASP JWT cheat sheet and the JWT CVE list, each refused with a specific code.
let rs: TestKey;
let es: TestKey;
let attacker: TestKey;
let verifier: Verifier;
let pem: string;
const corpus: { name: string; token: () => Promise<unknown> | unknown; code: AuthErrorCode }[] = [];

beforeAll(async () => {
  rs = await makeKey('RS256', 'rs-1');
  es = await makeKey('ES256', 'es-1');
  attacker = await makeKey('RS256', 'rs-1'); // same kid, different key
  const jwks: JwkSet = { keys: [rs.publicJwk as never, es.publicJwk as never] };
  verifier = createVerifier({
    issuer: [ISS, 'https://other-idp.test/'],
    audience: [AUD, 'billing-api'],
    algorithms: ['RS256', 'ES256'],
    keys: localJwks(jwks),
    clock: fakeClock(NOW_MS),
    clockToleranceSec: 5,
  });
  pem = createPublicKey({ key: rs.publicJwk as never, format: 'jwk' }).export({
    type: 'spki',
    format: 'pem',
  }) as string;
});

const add = (name: string, code: AuthErrorCode, token: () => Promise<unknown> | unknown) =>
  corpus.push({ name, code, token });

// alg: none, in every case variant, with and without a signature (CVE-2015-9235 and friends)
for (const alg of ['none', 'None', 'NONE', 'nOnE', 'none ', '']) {
  add(`alg ${JSON.stringify(alg)} with an empty signature`, 'ERR_OMS_AUTH_ALG_NOT_ALLOWED', () =>
    craft({ alg, typ: 'JWT' }, claimsAt()),
  );
}
add('alg none with a signature from a real token', 'ERR_OMS_AUTH_ALG_NOT_ALLOWED', async () => {
  const [, , sig] = parts(await sign(rs));
  return craft({ alg: 'none' }, claimsAt(), sig);
});
add('alg missing from the header', 'ERR_OMS_AUTH_ALG_NOT_ALLOWED', () =>
  craft({ kid: 'rs-1' }, claimsAt(), 'c2ln'),
);
// RS -> HS key confusion (CVE-2016-10555, CVE-2022-23540)
add('HS256 signed with the RSA public key PEM as secret', 'ERR_OMS_AUTH_ALG_NOT_ALLOWED', () =>
  hs256(pem, { alg: 'HS256', kid: 'rs-1' }, claimsAt()),
);
add('HS256 signed with the RSA public JWK (JSON) as secret', 'ERR_OMS_AUTH_ALG_NOT_ALLOWED', () =>
  hs256(JSON.stringify(rs.publicJwk), { alg: 'HS256', kid: 'rs-1' }, claimsAt()),
);
add('HS256 signed with an empty secret', 'ERR_OMS_AUTH_ALG_NOT_ALLOWED', () =>
  hs256('', { alg: 'HS256' }, claimsAt()),
);
add('an algorithm outside the list (RS512)', 'ERR_OMS_AUTH_ALG_NOT_ALLOWED', () =>
  craft({ alg: 'RS512', kid: 'rs-1' }, claimsAt(), 'c2ln'),
);
add('an algorithm outside the list (PS256 with the RSA kid)', 'ERR_OMS_AUTH_ALG_NOT_ALLOWED', () =>
  craft({ alg: 'PS256', kid: 'rs-1' }, claimsAt(), 'c2ln'),
);
// tampering
add('a tampered payload (sub changed)', 'ERR_OMS_AUTH_SIGNATURE', async () => {
  const [h, , s] = parts(await sign(rs));
  return `${h}.${b64(claimsAt({ sub: 'admin' }))}.${s}`;
});
add('a tampered payload (roles added)', 'ERR_OMS_AUTH_SIGNATURE', async () => {
  const [h, , s] = parts(await sign(rs));
  return `${h}.${b64(claimsAt({ roles: ['admin'] }))}.${s}`;
});
add('a signature swapped in from another valid token', 'ERR_OMS_AUTH_SIGNATURE', async () => {
  const [h, p] = parts(await sign(rs, { claims: { sub: 'admin' } }));
  const [, , s] = parts(await sign(rs));
  return `${h}.${p}.${s}`;
});
add('a truncated signature', 'ERR_OMS_AUTH_SIGNATURE', async () => {
  const [h, p, s] = parts(await sign(rs));
  return `${h}.${p}.${s.slice(0, 20)}`;
});
add('a stripped signature', 'ERR_OMS_AUTH_SIGNATURE', async () => {
  const [h, p] = parts(await sign(rs));
  return `${h}.${p}.`;
});
add('an ES256 signature with its bytes flipped', 'ERR_OMS_AUTH_SIGNATURE', async () => {
  const [h, p, s] = parts(await sign(es));
  const bytes = Buffer.from(s, 'base64url');
  bytes[5] = (bytes[5] ?? 0) ^ 0xff;
  return `${h}.${p}.${bytes.toString('base64url')}`;
});
add("an attacker's key under the issuer's kid", 'ERR_OMS_AUTH_SIGNATURE', () => sign(attacker));
add('a valid signature re-spelled with non-zero padding bits', 'ERR_OMS_AUTH_SIGNATURE', async () => {
  // 64 signature bytes take 86 characters: the last one carries 4 unused bits, which decoders ignore
  const [h, p, s] = parts(await sign(es));
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  const last = alphabet.indexOf(s.charAt(s.length - 1));
  return `${h}.${p}.${s.slice(0, -1)}${alphabet.charAt(last | 1)}`;
});
// kid injection
add('kid path traversal', 'ERR_OMS_AUTH_KEY_NOT_FOUND', () =>
  craft({ alg: 'RS256', kid: '../../../../../dev/null' }, claimsAt(), 'c2ln'),
);
add('kid SQL injection', 'ERR_OMS_AUTH_KEY_NOT_FOUND', () =>
  craft({ alg: 'RS256', kid: "x' UNION SELECT 'secret' --" }, claimsAt(), 'c2ln'),
);
add('kid as a number', 'ERR_OMS_AUTH_MALFORMED', () => craft({ alg: 'RS256', kid: 1 }, claimsAt(), 'c2ln'));
add('kid of 1000 characters', 'ERR_OMS_AUTH_MALFORMED', () =>
  craft({ alg: 'RS256', kid: 'k'.repeat(1000) }, claimsAt(), 'c2ln'),
);
add('kid of an RSA key on an ES256 token', 'ERR_OMS_AUTH_KEY_NOT_FOUND', () =>
  craft({ alg: 'ES256', kid: 'rs-1' }, claimsAt(), 'c2ln'),
);
// headers that point at or carry keys (CVE-2018-0114)
add('jku header', 'ERR_OMS_AUTH_UNSAFE_HEADER', () =>
  sign(rs, { header: { jku: 'https://evil.test/jwks.json' } }),
);
add('x5u header', 'ERR_OMS_AUTH_UNSAFE_HEADER', () =>
  sign(rs, { header: { x5u: 'https://evil.test/cert.pem' } }),
);
add('embedded jwk of the signing key', 'ERR_OMS_AUTH_UNSAFE_HEADER', () =>
  sign(attacker, { header: { jwk: attacker.publicJwk } }),
);
add('x5c header', 'ERR_OMS_AUTH_UNSAFE_HEADER', () => sign(rs, { header: { x5c: ['MIIB'] } }));
// crit
add('crit naming an unknown extension', 'ERR_OMS_AUTH_UNSAFE_HEADER', () =>
  craft({ alg: 'RS256', kid: 'rs-1', crit: ['exp'], exp: 1 }, claimsAt(), 'c2ln'),
);
add('crit b64:false (unencoded payload)', 'ERR_OMS_AUTH_UNSAFE_HEADER', () =>
  craft({ alg: 'RS256', kid: 'rs-1', crit: ['b64'], b64: false }, claimsAt(), 'c2ln'),
);
add('crit as an empty list', 'ERR_OMS_AUTH_UNSAFE_HEADER', () =>
  craft({ alg: 'RS256', kid: 'rs-1', crit: [] }, claimsAt(), 'c2ln'),
);
// typ confusion
add('a DPoP proof presented as an access token', 'ERR_OMS_AUTH_TYP', () =>
  sign(rs, { header: { typ: 'dpop+jwt' } }),
);
add('typ as a number', 'ERR_OMS_AUTH_TYP', () => sign(rs, { header: { typ: 7 } }));
// issuer and audience near-misses
add('iss without the trailing slash', 'ERR_OMS_AUTH_ISSUER', () =>
  sign(rs, { claims: { iss: 'https://idp.test' } }),
);
add('iss with a suffix', 'ERR_OMS_AUTH_ISSUER', () =>
  sign(rs, { claims: { iss: 'https://idp.test/.evil' } }),
);
add('iss in another case', 'ERR_OMS_AUTH_ISSUER', () => sign(rs, { claims: { iss: 'https://IDP.test/' } }));
add('iss missing', 'ERR_OMS_AUTH_ISSUER', () => sign(rs, { omit: ['iss'] }));
add('iss as an array', 'ERR_OMS_AUTH_ISSUER', () => sign(rs, { claims: { iss: [ISS] } }));
add('aud with a trailing space', 'ERR_OMS_AUTH_AUDIENCE', () => sign(rs, { claims: { aud: 'orders-api ' } }));
add('aud as a prefix', 'ERR_OMS_AUTH_AUDIENCE', () => sign(rs, { claims: { aud: 'orders-ap' } }));
add('aud list of near-misses', 'ERR_OMS_AUTH_AUDIENCE', () =>
  sign(rs, { claims: { aud: ['Orders-api', 'orders'] } }),
);
add('aud missing', 'ERR_OMS_AUTH_AUDIENCE', () => sign(rs, { omit: ['aud'] }));
// time claims
add('exp in the past', 'ERR_OMS_AUTH_TOKEN_EXPIRED', () => sign(rs, { claims: { exp: NOW - 60 } }));
add('exp just past the tolerance', 'ERR_OMS_AUTH_TOKEN_EXPIRED', () =>
  sign(rs, { claims: { exp: NOW - 5 } }),
);
add('exp as a string', 'ERR_OMS_AUTH_MALFORMED', () => sign(rs, { claims: { exp: String(NOW + 600) } }));
add('exp as null', 'ERR_OMS_AUTH_MALFORMED', () => sign(rs, { claims: { exp: null } }));
add('exp missing', 'ERR_OMS_AUTH_CLAIMS', () => sign(rs, { omit: ['exp'] }));
add('nbf in the future', 'ERR_OMS_AUTH_TOKEN_NOT_YET_VALID', () => sign(rs, { claims: { nbf: NOW + 60 } }));
add('nbf as a string', 'ERR_OMS_AUTH_MALFORMED', () => sign(rs, { claims: { nbf: 'now' } }));
add('iat as a string', 'ERR_OMS_AUTH_MALFORMED', () => sign(rs, { claims: { iat: 'yesterday' } }));
// size
add('one byte over maxTokenBytes', 'ERR_OMS_AUTH_TOO_LARGE', () => `${'a'.repeat(8190)}.b.`);
add('a 1 MB token', 'ERR_OMS_AUTH_TOO_LARGE', () => 'x'.repeat(1 << 20));
// malformed compact forms
add('no dots', 'ERR_OMS_AUTH_MALFORMED', () => 'not-a-token');
add('two parts', 'ERR_OMS_AUTH_MALFORMED', () => 'eyJhbGciOiJSUzI1NiJ9.e30');
add('four parts', 'ERR_OMS_AUTH_MALFORMED', () => 'a.b.c.d');
add('only dots', 'ERR_OMS_AUTH_MALFORMED', () => '..');
add('base64 (not base64url) characters', 'ERR_OMS_AUTH_MALFORMED', () => 'eyJhbGciOiJSUzI1NiJ9+.e30.c2ln');
add('a header that is not JSON', 'ERR_OMS_AUTH_MALFORMED', () => `${b64('{alg:RS256')}.e30.c2ln`);
add('a header that is a JSON array', 'ERR_OMS_AUTH_MALFORMED', () => `${b64(['RS256'])}.e30.c2ln`);
add('a payload that is not JSON', 'ERR_OMS_AUTH_MALFORMED', async () => {
  const key = createPrivateKey({ key: (await exportJWK(rs.privateKey)) as never, format: 'jwk' });
  const input = `${b64({ alg: 'RS256', kid: 'rs-1' })}.${b64('not json')}`;
  return `${input}.${createSign('RSA-SHA256').update(input).sign(key).toString('base64url')}`;
});
add('whitespace inside the token', 'ERR_OMS_AUTH_MALFORMED', async () => (await sign(rs)).replace('.', ' .'));
add('a NUL byte inside the token', 'ERR_OMS_AUTH_MALFORMED', async () => `${await sign(rs)}\u0000`);
// a JWE where a JWS is expected
add('a JWE', 'ERR_OMS_AUTH_MALFORMED', async () => {
  const { publicKey } = await generateKeyPair('RSA-OAEP-256');
  return new CompactEncrypt(new TextEncoder().encode(JSON.stringify(claimsAt())))
    .setProtectedHeader({ alg: 'RSA-OAEP-256', enc: 'A256GCM', kid: 'rs-1' })
    .encrypt(publicKey);
});
add('a JWS header with enc (JWE disguise)', 'ERR_OMS_AUTH_MALFORMED', () =>
  craft({ alg: 'RS256', kid: 'rs-1', enc: 'A256GCM' }, claimsAt(), 'c2ln'),
);
// not a string at all
add('a number', 'ERR_OMS_AUTH_MALFORMED', () => 42);
add('null', 'ERR_OMS_AUTH_MALFORMED', () => null);
add('an object', 'ERR_OMS_AUTH_MALFORMED', () => ({ toString: () => 'eyJ' }));
add('a Buffer', 'ERR_OMS_AUTH_MALFORMED', () => Buffer.from('a.b.c'));

describe('attack corpus', () => {
  it('has at least 25 tokens', () => {
    expect(corpus.length).toBeGreaterThanOrEqual(25);
  });

  it.each(corpus.map((c) => [c.name, c] as const))('refuses %s', async (_name, c) => {
    const token = await c.token();
    const err = await verifier.verify(token as string).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isOmsAuthError(err), `expected an OmsAuthError, got ${String(err)}`).toBe(true);
    if (!isOmsAuthError(err)) return;
    expect(err.code).toBe(c.code);
    expect(err.httpStatus).toBe(401);
    expect(err.wwwAuthenticate).toBe('Bearer error="invalid_token"');
    expect(verifier.cacheSize).toBe(0);
  });

  it('accepts the honest tokens the corpus was built from', async () => {
    expect((await verifier.verify(await sign(rs))).subject).toBe('user-1');
    expect((await verifier.verify(await sign(es, { claims: { aud: 'billing-api' } }))).subject).toBe(
      'user-1',
    );
    // within the clock tolerance on both ends
    await expect(verifier.verify(await sign(rs, { claims: { exp: NOW - 4 } }))).resolves.toBeDefined();
    await expect(verifier.verify(await sign(rs, { claims: { nbf: NOW + 5 } }))).resolves.toBeDefined();
    await expect(
      verifier.verify(await sign(rs, { claims: { iss: 'https://other-idp.test/' } })),
    ).resolves.toBeDefined();
  });
});
