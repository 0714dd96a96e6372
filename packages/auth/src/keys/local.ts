import { fail, invalidOption } from '../errors.js';
import { Emitter } from '../internal/emitter.js';
import type { JwkSet, JwsAlgorithm, KeySource, KeySourceEvents, ResolvedKey } from '../types.js';
import { KeySet, keyNotFound, unusableReason } from './key-set.js';

/**
 * A fixed JWK Set held in memory: public keys only (a JWK with private members, or an `oct` key, is refused at
 * construction; use `hmacSecret` for HMAC).
 *
 * @example
 * import { createVerifier, localJwks, type JwkSet } from '@oms/auth';
 * declare const jwks: JwkSet;
 * const verifier = createVerifier({
 *   issuer: 'https://idp.example.com/',
 *   audience: 'orders-api',
 *   algorithms: ['ES256'],
 *   keys: localJwks(jwks),
 * });
 */
export function localJwks(jwks: JwkSet): KeySource {
  if (typeof jwks !== 'object' || jwks === null || !Array.isArray(jwks.keys) || jwks.keys.length === 0) {
    throw invalidOption(
      'localJwks(jwks) needs a JWK Set: { keys: [ ...public JWKs ] } with at least one key',
    );
  }
  jwks.keys.forEach((k, i) => {
    const why = unusableReason(k);
    if (why !== undefined) throw invalidOption(`localJwks: keys[${i}] cannot verify signatures: ${why}`);
  });
  const { set } = KeySet.next(undefined, structuredClone(jwks.keys));
  const events = new Emitter<KeySourceEvents>();
  return {
    kind: 'local-jwks',
    symmetric: false,
    // Not async: a known key answers with the promise its record keeps, already settled.
    getKey(alg, kid) {
      const found = set.find(alg, kid);
      if (found === undefined || found === 'ambiguous') return Promise.reject(keyNotFound(alg, kid, found));
      return found.resolve(alg);
    },
    on: (event, fn) => events.on(event, fn),
    close: async () => events.clear(),
    [Symbol.asyncDispose]: async () => events.clear(),
  };
}

/** The handle of a secret never retires: rotating a secret means building a new verifier. */
const LIVE = Object.freeze({ retired: false });

/**
 * Options of `hmacSecret`.
 *
 * @example
 * const keys = hmacSecret(process.env.JWT_SECRET ?? '', { kid: 'dev-2024' } satisfies HmacSecretOptions);
 */
export interface HmacSecretOptions {
  /** When set, a token carrying a different `kid` is refused. */
  kid?: string;
}

/**
 * A shared HMAC secret for HS256/384/512, at least 32 bytes (RFC 7518 §3.2 wants the key as long as the hash).
 * A verifier on a secret accepts only HS algorithms, so a public key can never be used as an HMAC secret.
 *
 * @example
 * import { createVerifier, hmacSecret } from '@oms/auth';
 * const verifier = createVerifier({
 *   issuer: 'https://idp.example.com/',
 *   audience: 'orders-api',
 *   algorithms: ['HS256'],
 *   keys: hmacSecret(process.env.JWT_SECRET ?? ''),
 * });
 */
export function hmacSecret(secret: string | Uint8Array, opts: HmacSecretOptions = {}): KeySource {
  const bytes = typeof secret === 'string' ? new TextEncoder().encode(secret) : secret;
  if (!(bytes instanceof Uint8Array) || bytes.byteLength < 32) {
    throw invalidOption(
      `hmacSecret needs at least 32 bytes of secret (got ${bytes instanceof Uint8Array ? bytes.byteLength : typeof secret}); generate one with crypto.randomBytes(32)`,
    );
  }
  const raw = new Uint8Array(bytes);
  const keys = new Map<string, Promise<ResolvedKey>>();
  const events = new Emitter<KeySourceEvents>();
  const hashOf = (alg: JwsAlgorithm) => `SHA-${alg.slice(2)}`;
  return {
    kind: 'hmac-secret',
    symmetric: true,
    getKey(alg, kid) {
      if (!alg.startsWith('HS'))
        return Promise.reject(fail('ERR_OMS_AUTH_ALG_NOT_ALLOWED', `${alg} cannot use an HMAC secret`));
      if (opts.kid !== undefined && kid !== undefined && kid !== opts.kid)
        return Promise.reject(keyNotFound(alg, kid, undefined));
      let p = keys.get(alg);
      if (p === undefined) {
        p = crypto.subtle
          .importKey('raw', raw, { name: 'HMAC', hash: hashOf(alg) }, false, ['verify'])
          .then((key) => ({ key, handle: LIVE }));
        keys.set(alg, p);
      }
      return p;
    },
    on: (event, fn) => events.on(event, fn),
    close: async () => events.clear(),
    [Symbol.asyncDispose]: async () => events.clear(),
  };
}
