import { createPublicKey } from 'node:crypto';
import {
  authorizer,
  createVerifier,
  hmacSecret,
  type Jwk,
  localJwks,
  type Principal,
  type RoleDefinition,
  rbac,
  revocationList,
  routePolicy,
} from '@oms/auth';
import { createVerifier as fastVerifier } from 'fast-jwt';
import { type CryptoKey, exportJWK, generateKeyPair, importJWK, jwtVerify, SignJWT } from 'jose';
import { defineSuite } from '../src/harness.js';

// Each algorithm is verified by jose alone, by @oms/auth with and without its cache, and by fast-jwt with and
// without its cache, on the same token in the same run. Then the authorization layers on a cached token.
const ISS = 'https://idp.bench/';
const AUD = 'bench-api';
const SECRET = new TextEncoder().encode('bench-secret-that-is-at-least-32-bytes!');
const ALGS = ['HS256', 'RS256', 'ES256'] as const;
type Alg = (typeof ALGS)[number];

interface Material {
  alg: Alg;
  token: string;
  /** What jose verifies with: the secret, or an imported public key. */
  joseKey: CryptoKey | Uint8Array;
  /** What fast-jwt verifies with: the secret, or a PEM. */
  fastKey: string | Buffer;
  jwk?: Jwk;
}

async function material(alg: Alg): Promise<Material> {
  const claims = { sub: 'user-1', roles: ['clerk'], tid: 'acme' };
  const sign = (key: CryptoKey | Uint8Array, kid?: string) =>
    new SignJWT(claims)
      .setProtectedHeader(kid ? { alg, kid } : { alg })
      .setIssuer(ISS)
      .setAudience(AUD)
      .setIssuedAt()
      .setExpirationTime('2h')
      .sign(key);
  if (alg === 'HS256') {
    return { alg, token: await sign(SECRET), joseKey: SECRET, fastKey: Buffer.from(SECRET) };
  }
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const jwk = { ...(await exportJWK(publicKey)), kid: `${alg}-1`, alg } as Jwk;
  const pem = createPublicKey({ key: jwk as never, format: 'jwk' }).export({
    type: 'spki',
    format: 'pem',
  }) as string;
  return {
    alg,
    token: await sign(privateKey, jwk.kid),
    joseKey: (await importJWK(jwk, alg)) as CryptoKey,
    fastKey: pem,
    jwk,
  };
}

function rolesOf(n: number): Record<string, RoleDefinition> {
  const roles: Record<string, RoleDefinition> = {};
  for (let i = 0; i < n; i++) {
    roles[`role${i}`] = {
      permissions: [`res${i}:read`, `res${i}:write`],
      ...(i % 10 === 0 ? {} : { inherits: [`role${i - 1}`] }),
    };
  }
  roles.clerk = { inherits: ['role5'], permissions: ['orders:read'] };
  return roles;
}

export default defineSuite({
  name: 'auth',
  async setup() {
    const m = Object.fromEntries(
      await Promise.all(ALGS.map(async (a) => [a, await material(a)] as const)),
    ) as Record<Alg, Material>;
    const omsVerifier = (alg: Alg, cache: boolean) =>
      createVerifier({
        issuer: ISS,
        audience: AUD,
        algorithms: [alg],
        keys: alg === 'HS256' ? hmacSecret(SECRET) : localJwks({ keys: [m[alg].jwk as Jwk] }),
        ...(cache ? {} : { cache: false as const }),
      });
    const fast = (alg: Alg, cache: boolean) =>
      fastVerifier({ key: m[alg].fastKey, algorithms: [alg], allowedIss: ISS, allowedAud: AUD, cache });
    const oms = Object.fromEntries(
      ALGS.map((a) => [a, { cold: omsVerifier(a, false), warm: omsVerifier(a, true) }]),
    ) as Record<Alg, { cold: ReturnType<typeof omsVerifier>; warm: ReturnType<typeof omsVerifier> }>;
    const fj = Object.fromEntries(
      ALGS.map((a) => [a, { cold: fast(a, false), warm: fast(a, true) }]),
    ) as Record<Alg, { cold: ReturnType<typeof fast>; warm: ReturnType<typeof fast> }>;
    // The deny list every verification consults, cache hits included: 1,000 revoked ids and 1,000 subjects.
    const revocations = revocationList();
    for (let i = 0; i < 1_000; i++) {
      await revocations.revoke({ jti: `revoked-${i}` });
      await revocations.revoke({ subject: `gone-${i}` });
    }
    const denied = createVerifier({
      issuer: ISS,
      audience: AUD,
      algorithms: ['HS256'],
      keys: hmacSecret(SECRET),
      revocations,
    });
    await denied.verify(m.HS256.token);
    // warm both caches
    for (const a of ALGS) {
      await oms[a].warm.verify(m[a].token);
      fj[a].warm(m[a].token);
    }

    const routeMap: Record<string, string> = {};
    for (let i = 0; i < 5_000; i++) routeMap[`GET /v1/r${i}/:id/s${i % 7}`] = `r${i}:read`;
    routeMap['GET /v1/orders/:id'] = 'orders:read';
    const routes = routePolicy(routeMap);
    const small = rbac({ roles: rolesOf(10) });
    const large = rbac({ roles: rolesOf(10_000) });
    const principal: Principal = { subject: 'user-1', roles: ['clerk'], scopes: [], claims: {} };
    const auth = authorizer({ verifier: oms.HS256.warm, routes, rbac: small });
    const request = {
      method: 'GET',
      url: '/v1/orders/42',
      headers: { authorization: `Bearer ${m.HS256.token}` },
    };
    const first = await auth.authorize(request);
    if (first.status !== 200) throw new Error(`authorize bench setup: ${first.status} ${first.reason}`);
    return { m, oms, fj, denied, routeMap, routes, small, large, principal, auth, request };
  },
  cases: (c) => [
    ...ALGS.flatMap((a) => [
      {
        name: `jose ${a}`,
        fn: () => jwtVerify(c.m[a].token, c.m[a].joseKey, { algorithms: [a], issuer: ISS, audience: AUD }),
      },
      { name: `oms ${a} uncached`, fn: () => c.oms[a].cold.verify(c.m[a].token) },
      { name: `fast-jwt ${a} uncached`, fn: () => c.fj[a].cold(c.m[a].token) },
    ]),
    { name: 'oms HS256 cache hit', fn: () => c.oms.HS256.warm.verify(c.m.HS256.token) },
    { name: 'oms RS256 cache hit', fn: () => c.oms.RS256.warm.verify(c.m.RS256.token) },
    {
      name: 'oms HS256 cache hit, 2,000 revocations',
      fn: () => c.denied.verify(c.m.HS256.token),
    },
    { name: 'fast-jwt HS256 cache hit', fn: () => c.fj.HS256.warm(c.m.HS256.token) },
    { name: 'fast-jwt RS256 cache hit', fn: () => c.fj.RS256.warm(c.m.RS256.token) },
    { name: 'oms authorize (route + RBAC, cached token)', fn: () => c.auth.authorize(c.request) },
    { name: 'route resolve (5,000 patterns)', fn: () => c.routes.resolve('GET', '/v1/r4321/9/s2') },
    { name: 'route table build (5,000 patterns)', fn: () => routePolicy(c.routeMap) },
    { name: 'rbac can (10 roles)', fn: () => c.small.can(c.principal, 'res3:read') },
    { name: 'rbac can (10,000 roles)', fn: () => c.large.can(c.principal, 'res3:read') },
  ],
  ratios: [
    ...ALGS.map((a) => ({
      name: `${a} uncached: oms vs jose alone (time/op)`,
      numerator: `oms ${a} uncached`,
      denominator: `jose ${a}`,
      goal: '<= 1.11',
    })),
    ...ALGS.map((a) => ({
      name: `${a} uncached: oms vs fast-jwt (time/op)`,
      numerator: `oms ${a} uncached`,
      denominator: `fast-jwt ${a} uncached`,
    })),
    {
      name: 'HS256 cache hit: oms vs fast-jwt (time/op)',
      numerator: 'oms HS256 cache hit',
      denominator: 'fast-jwt HS256 cache hit',
      goal: '<= 1',
    },
    {
      name: 'RS256 cache hit: oms vs fast-jwt (time/op)',
      numerator: 'oms RS256 cache hit',
      denominator: 'fast-jwt RS256 cache hit',
      goal: '<= 1',
    },
    {
      name: 'HS256 cache hit: with a 2,000-entry deny list vs without (time/op)',
      numerator: 'oms HS256 cache hit, 2,000 revocations',
      denominator: 'oms HS256 cache hit',
    },
    {
      name: 'rbac: 10,000 roles vs 10 (time/op)',
      numerator: 'rbac can (10,000 roles)',
      denominator: 'rbac can (10 roles)',
      goal: '<= 1.1',
    },
  ],
});
