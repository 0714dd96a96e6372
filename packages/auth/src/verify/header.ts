import { errors as joseErrors } from 'jose';
import { fail, isOmsAuthError, type OmsAuthError } from '../errors.js';
import type { JwsAlgorithm } from '../types.js';

/** header.payload.signature, each base64url; an empty signature is told apart later. */
const COMPACT = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

/** The protected header of a compact JWS, as far as the verifier reads it. */
export interface JwsHeader {
  readonly alg: JwsAlgorithm;
  readonly kid: string | undefined;
  readonly typ: string | undefined;
  readonly jwk: unknown;
}

/** Header members that point at, or carry, a key chosen by whoever made the token: never followed. */
const UNSAFE = ['jku', 'x5u', 'jwk', 'x5c'] as const;

/** `at+jwt` and `application/at+jwt` are the same type (RFC 7515 §4.1.9). */
export const normalizeTyp = (typ: string): string => {
  const t = typ.toLowerCase();
  return t.startsWith('application/') ? t.slice(12) : t;
};

/** What `parseHeader` checks a header against. */
export interface HeaderRules {
  readonly algorithms: ReadonlySet<string>;
  readonly typ: string | undefined;
  /** The typ a token must never have unless asked for (a DPoP proof is not an access token). */
  readonly refusedTyp: string | undefined;
  readonly allowEmbeddedJwk?: boolean;
  readonly what: string;
}

const HEADER_CACHE_MAX = 256;

/**
 * Checks the compact form and the protected header before any key is looked up or any signature computed, so a
 * hostile token costs a split and one small JSON parse. Everything refused here has its own code.
 *
 * Tokens of one issuer share a handful of distinct headers, so a verifier passes `cache`: accepted headers are
 * remembered by their exact encoded segment (the checks depend on nothing else), refused ones never are.
 */
export function parseHeader(token: string, o: HeaderRules, cache?: Map<string, JwsHeader>): JwsHeader {
  // One pass for the common case; the reason for a refusal is worked out only on the refusal path.
  if (!COMPACT.test(token)) {
    const parts = token.split('.');
    if (parts.length === 5)
      throw fail('ERR_OMS_AUTH_MALFORMED', `${o.what} is a JWE; a signed JWS was expected`);
    if (parts.length !== 3)
      throw fail('ERR_OMS_AUTH_MALFORMED', `${o.what} is not a compact JWS (header.payload.signature)`);
    throw fail('ERR_OMS_AUTH_MALFORMED', `${o.what} has characters outside base64url`);
  }
  const h = token.slice(0, token.indexOf('.'));
  let header = cache?.get(h);
  if (header === undefined) {
    header = readHeader(h, o);
    if (cache !== undefined) {
      if (cache.size >= HEADER_CACHE_MAX) cache.clear();
      cache.set(h, header);
    }
  }
  const sigLength = token.length - token.lastIndexOf('.') - 1;
  if (sigLength === 0) throw fail('ERR_OMS_AUTH_SIGNATURE', `${o.what} has no signature`);
  if (!canonical(token, sigLength))
    throw fail('ERR_OMS_AUTH_SIGNATURE', `${o.what}'s signature is not canonical base64url`);
  return header;
}

const B64URL_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/**
 * True when the unused low bits of the last character are zero. Decoders ignore those bits, so without this check
 * one signature has several spellings and a token can be re-spelled into a different string that still verifies,
 * slipping past anything keyed on the token string (a deny list of token digests, an audit trail).
 */
function canonical(token: string, sigLength: number): boolean {
  const rem = sigLength % 4;
  if (rem === 0) return true;
  if (rem === 1) return false;
  const last = B64URL_ALPHABET.indexOf(token.charAt(token.length - 1));
  return (last & (rem === 2 ? 0x0f : 0x03)) === 0;
}

function readHeader(h: string, o: HeaderRules): JwsHeader {
  let header: unknown;
  try {
    header = JSON.parse(Buffer.from(h, 'base64url').toString('utf8'));
  } catch {
    throw fail('ERR_OMS_AUTH_MALFORMED', `${o.what}'s header is not JSON`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) {
    throw fail('ERR_OMS_AUTH_MALFORMED', `${o.what}'s header is not a JSON object`);
  }
  const hd = header as Record<string, unknown>;
  if (hd.enc !== undefined)
    throw fail('ERR_OMS_AUTH_MALFORMED', `${o.what} is a JWE; a signed JWS was expected`);
  const { alg } = hd;
  // `none` in any spelling, an HS alg on an asymmetric verifier, anything unlisted: one answer.
  if (typeof alg !== 'string' || !o.algorithms.has(alg)) {
    throw fail('ERR_OMS_AUTH_ALG_NOT_ALLOWED', `${o.what}'s alg is not in the allow-list`);
  }
  for (const m of UNSAFE) {
    if (hd[m] !== undefined && !(m === 'jwk' && o.allowEmbeddedJwk)) {
      throw fail('ERR_OMS_AUTH_UNSAFE_HEADER', `${o.what} carries a "${m}" header, which is never followed`);
    }
  }
  // No extension is understood, so any `crit` (b64: false included) is refused as RFC 7515 §4.1.11 requires.
  if (hd.crit !== undefined) throw fail('ERR_OMS_AUTH_UNSAFE_HEADER', `${o.what} has a "crit" header`);
  const typ = hd.typ;
  if (typ !== undefined && typeof typ !== 'string')
    throw fail('ERR_OMS_AUTH_TYP', `${o.what}'s typ is not a string`);
  if (o.typ !== undefined) {
    if (typ === undefined || normalizeTyp(typ) !== o.typ)
      throw fail('ERR_OMS_AUTH_TYP', `${o.what} has the wrong typ`);
  } else if (typ !== undefined && o.refusedTyp !== undefined && normalizeTyp(typ) === o.refusedTyp) {
    throw fail('ERR_OMS_AUTH_TYP', `${o.what} has typ ${o.refusedTyp}`);
  }
  const kid = hd.kid;
  if (kid !== undefined && (typeof kid !== 'string' || kid.length === 0 || kid.length > 256)) {
    throw fail('ERR_OMS_AUTH_MALFORMED', `${o.what}'s kid is not a string of 1-256 characters`);
  }
  return Object.freeze({ alg: alg as JwsAlgorithm, kid, typ, jwk: hd.jwk });
}

/** Translates jose's errors into this package's codes. */
export function fromJose(e: unknown, what: string): OmsAuthError {
  if (isOmsAuthError(e)) return e;
  if (e instanceof joseErrors.JWTExpired) return fail('ERR_OMS_AUTH_TOKEN_EXPIRED', `${what} has expired`, e);
  if (e instanceof joseErrors.JWTClaimValidationFailed) {
    if (e.reason === 'invalid')
      return fail('ERR_OMS_AUTH_MALFORMED', `${what}'s "${e.claim}" claim has the wrong type`, e);
    switch (e.claim) {
      case 'nbf':
        return fail('ERR_OMS_AUTH_TOKEN_NOT_YET_VALID', `${what} is not valid yet`, e);
      case 'iss':
        return fail('ERR_OMS_AUTH_ISSUER', `${what} has an issuer that is not accepted`, e);
      case 'aud':
        return fail('ERR_OMS_AUTH_AUDIENCE', `${what} is not for an accepted audience`, e);
      case 'typ':
        return fail('ERR_OMS_AUTH_TYP', `${what} has the wrong typ`, e);
      default:
        return fail('ERR_OMS_AUTH_CLAIMS', `${what} lacks or fails the "${e.claim}" claim`, e);
    }
  }
  if (e instanceof joseErrors.JWSSignatureVerificationFailed) {
    return fail('ERR_OMS_AUTH_SIGNATURE', `${what}'s signature does not verify`, e);
  }
  if (e instanceof joseErrors.JOSEAlgNotAllowed)
    return fail('ERR_OMS_AUTH_ALG_NOT_ALLOWED', `${what}'s alg is not allowed`, e);
  return fail('ERR_OMS_AUTH_MALFORMED', `${what} could not be read`, e);
}
