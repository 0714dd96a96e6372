import { createHash } from 'node:crypto';
import { calculateJwkThumbprint, EmbeddedJWK, jwtVerify } from 'jose';
import { fail, invalidOption, isOmsAuthError, type OmsAuthError } from '../errors.js';
import { type Clock, systemClock } from '../internal/clock.js';
import { hasPrivateMembers, isHmac, KNOWN_ALGORITHMS } from '../keys/key-set.js';
import type { DpopCheck, DpopOptions, DpopVerifier, JwsAlgorithm } from '../types.js';
import { v } from '../validate.js';
import { fromJose, parseHeader } from '../verify/header.js';

const DEFAULT_ALGORITHMS: readonly JwsAlgorithm[] = ['ES256', 'ES384', 'PS256', 'RS256', 'EdDSA', 'Ed25519'];

const invalid = (message: string, cause?: unknown): OmsAuthError => fail('ERR_OMS_AUTH_DPOP', message, cause);

/** The proof's `htu` and the request's URL compare after RFC 3986 §6 normalization, without query and fragment. */
function normalizeUri(uri: string): string | undefined {
  try {
    const u = new URL(uri);
    if (u.protocol !== 'https:' && u.protocol !== 'http:') return undefined;
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return undefined;
  }
}

/**
 * base64url(SHA-256(access token)), the `ath` claim (RFC 9449 §4.2), for clients and tests building proofs.
 *
 * @example
 * const ath = accessTokenHash('eyJhbGciOi...');
 */
export const accessTokenHash = (token: string): string =>
  createHash('sha256').update(token).digest('base64url');

/**
 * Checks DPoP proofs (RFC 9449) with every check of its §4.3:
 * - one well-formed JWS with `typ: dpop+jwt`, an asymmetric algorithm from the allow-list, and an embedded `jwk`
 *   that is a public key (private members refused), whose signature verifies;
 * - `jti`, `htm`, `htu` and `iat` present; `htm` equals the request method; `htu` equals the request URL built from
 *   trusted configuration (`htuFrom`) and the request path, never the Host header;
 * - `iat` within `iatWindowSec` of now; the server `nonce`, when one is configured; `ath` equal to the hash of the
 *   access token presented;
 * - the `jti` was never seen before within the window (`replayStore`, checked last so a bad proof burns no id).
 *
 * The verifier then compares the key's thumbprint with the token's `cnf.jkt`, and refuses a DPoP-bound token
 * presented with the Bearer scheme.
 *
 * @example
 * import { createVerifier, dpop, memoryReplayStore, remoteJwks } from '@oms/auth';
 * const verifier = createVerifier({
 *   issuer: 'https://idp.example.com/',
 *   audience: 'orders-api',
 *   algorithms: ['ES256'],
 *   keys: remoteJwks('https://idp.example.com/.well-known/jwks.json'),
 *   dpop: dpop({ replayStore: memoryReplayStore(), htuFrom: { origin: 'https://api.example.com' } }),
 * });
 */
export function dpop(opts: DpopOptions): DpopVerifier {
  const cfg = parseDpopOptions(opts);
  return {
    verifyProof: (check, signal) => verifyProof(cfg, check, signal),
    algorithms: Object.freeze(cfg.algorithms),
  };
}

/** dpop()'s options, validated once at construction. */
interface DpopConfig {
  algorithms: JwsAlgorithm[];
  algorithmSet: Set<string>;
  htuOf: (req: { method: string; url: string }) => string | undefined;
  windowSec: number;
  maxProofBytes: number;
  clock: Clock;
  nonce: DpopOptions['nonce'];
  replayStore: DpopOptions['replayStore'];
}

function parseDpopOptions(opts: DpopOptions): DpopConfig {
  if (typeof opts !== 'object' || opts === null)
    throw invalidOption('dpop(options) needs { replayStore, htuFrom }');
  if (typeof opts.replayStore?.remember !== 'function') {
    throw invalidOption(
      'dpop needs replayStore: memoryReplayStore() or redisReplayStore() from @oms/auth/redis',
    );
  }
  const algorithms = [...(opts.algorithms ?? DEFAULT_ALGORITHMS)];
  if (algorithms.length === 0) throw invalidOption('dpop: algorithms must not be empty');
  for (const alg of algorithms) {
    if (!KNOWN_ALGORITHMS.has(alg) || isHmac(alg)) {
      throw invalidOption(
        `dpop: ${JSON.stringify(alg)} is not an asymmetric JWS algorithm; proofs are signed with a private key`,
      );
    }
  }
  const { nonce } = opts;
  if (nonce !== undefined && (typeof nonce.current !== 'function' || typeof nonce.accepts !== 'function')) {
    throw invalidOption('dpop: nonce must have current() and accepts(nonce)');
  }
  return {
    algorithms,
    algorithmSet: new Set<string>(algorithms),
    htuOf: buildHtu(opts.htuFrom),
    windowSec: v.positiveFinite('iatWindowSec', opts.iatWindowSec ?? 60),
    maxProofBytes: v.integer('maxProofBytes', opts.maxProofBytes ?? 4096, { min: 64 }),
    clock: v.clock(opts.clock, systemClock),
    nonce,
    replayStore: opts.replayStore,
  };
}

/** A nonce failure carries the current nonce, so the client can retry with it (RFC 9449 §8). */
function nonceError(cfg: DpopConfig, message: string) {
  const e = fail('ERR_OMS_AUTH_DPOP_NONCE', message);
  if (cfg.nonce !== undefined) e.dpopNonce = cfg.nonce.current();
  return e;
}

async function verifyProof(
  cfg: DpopConfig,
  check: DpopCheck,
  signal?: AbortSignal,
): Promise<{ jkt: string }> {
  const { proof } = check;
  if (typeof proof !== 'string' || proof.length === 0) throw invalid('the DPoP proof is missing');
  if (proof.length > cfg.maxProofBytes)
    throw invalid(`the DPoP proof is longer than ${cfg.maxProofBytes} bytes`);
  const jwk = proofKey(cfg, proof);
  let claims: Record<string, unknown>;
  const now = cfg.clock.now();
  try {
    const r = await jwtVerify(proof, EmbeddedJWK, {
      algorithms: cfg.algorithms,
      typ: 'dpop+jwt',
      currentDate: new Date(now),
      requiredClaims: ['jti', 'htm', 'htu', 'iat'],
    });
    claims = r.payload as Record<string, unknown>;
  } catch (e) {
    throw invalid(fromJose(e, 'the DPoP proof').message, e);
  }
  const jti = checkClaims(cfg, claims, check, now);
  const jkt = await calculateJwkThumbprint(jwk as Parameters<typeof calculateJwkThumbprint>[0], 'sha256');
  // Keyed by key and jti, hashed so a hostile jti never reaches the store as is. Kept for the whole window.
  const id = createHash('sha256').update(jkt).update('\0').update(jti).digest('base64url');
  let fresh: boolean;
  try {
    fresh = await cfg.replayStore.remember(id, Math.ceil(2 * cfg.windowSec * 1000), signal);
  } catch (e) {
    if (isOmsAuthError(e)) throw e;
    throw fail('ERR_OMS_AUTH_REPLAY_STORE_UNAVAILABLE', 'the DPoP replay store could not be reached', e);
  }
  if (!fresh) throw fail('ERR_OMS_AUTH_DPOP_REPLAY', 'the DPoP proof was already used');
  return { jkt };
}

/** The public key the proof embeds, refused when the header is wrong or the key is private. */
function proofKey(cfg: DpopConfig, proof: string): object {
  let header: ReturnType<typeof parseHeader>;
  try {
    header = parseHeader(proof, {
      algorithms: cfg.algorithmSet,
      typ: 'dpop+jwt',
      refusedTyp: undefined,
      allowEmbeddedJwk: true,
      what: 'the DPoP proof',
    });
  } catch (e) {
    throw isOmsAuthError(e) ? invalid(e.message, e) : e;
  }
  const jwk = header.jwk;
  if (typeof jwk !== 'object' || jwk === null || Array.isArray(jwk))
    throw invalid('the DPoP proof has no jwk header');
  if (hasPrivateMembers(jwk as Record<string, unknown>))
    throw invalid('the DPoP proof jwk holds private key material');
  return jwk;
}

/** Checks the proof's claims against the request; returns its jti. */
function checkClaims(
  cfg: DpopConfig,
  claims: Record<string, unknown>,
  check: DpopCheck,
  now: number,
): string {
  const { method, url, accessToken } = check;
  const { jti, htm, htu, iat, ath } = claims;
  if (typeof jti !== 'string' || jti.length === 0 || jti.length > 512)
    throw invalid('the DPoP proof jti is not a string of 1-512 characters');
  if (typeof htm !== 'string' || htm !== method)
    throw invalid('the DPoP proof htm does not match the request method');
  const expected = cfg.htuOf({ method, url });
  if (typeof htu !== 'string' || expected === undefined || normalizeUri(htu) !== expected) {
    throw invalid('the DPoP proof htu does not match the request URL');
  }
  if (typeof iat !== 'number' || !Number.isFinite(iat) || Math.abs(iat - now / 1000) > cfg.windowSec) {
    throw invalid('the DPoP proof iat is outside the accepted window');
  }
  if (cfg.nonce !== undefined) {
    if (typeof claims.nonce !== 'string')
      throw nonceError(cfg, 'the DPoP proof has no nonce; use the one in DPoP-Nonce');
    if (!cfg.nonce.accepts(claims.nonce)) throw nonceError(cfg, 'the DPoP proof nonce is stale');
  }
  if (accessToken !== undefined) {
    if (typeof ath !== 'string' || ath !== accessTokenHash(accessToken)) {
      throw invalid('the DPoP proof ath does not match the access token');
    }
  }
  return jti;
}

function buildHtu(
  from: DpopOptions['htuFrom'],
): (req: { method: string; url: string }) => string | undefined {
  if (typeof from === 'function') {
    return (req) => {
      try {
        const u = from(req);
        return typeof u === 'string' ? normalizeUri(u) : undefined;
      } catch {
        return undefined;
      }
    };
  }
  const origin = typeof from === 'object' && from !== null ? normalizeUri(from.origin) : undefined;
  if (origin === undefined || !/^https?:\/\/[^/]+\/$/.test(origin)) {
    throw invalidOption(
      'dpop: htuFrom must be { origin: "https://api.example.com" } or a function (req) => URL',
    );
  }
  const base = origin.slice(0, -1);
  return ({ url }) => {
    if (typeof url !== 'string' || !url.startsWith('/') || url.startsWith('//')) return undefined;
    // Only the path of the request target is used: the scheme and authority come from configuration.
    return normalizeUri(`${base}${url}`);
  };
}
