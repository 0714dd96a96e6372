import { fail } from '../errors.js';
import type { CredentialLocations, HeadersLike } from '../types.js';

/** The credentials a request carries. */
export type Credentials =
  | { readonly scheme: 'bearer'; readonly token: string }
  | { readonly scheme: 'dpop'; readonly token: string; readonly proof: string };

/**
 * One header value. Two values of a single-valued header (two `Authorization`s, say) are refused rather than
 * guessed at: a proxy and this code picking different ones is how credentials get confused.
 */
export function headerValue(headers: HeadersLike, name: string, maxBytes: number): string | undefined {
  let value: string | readonly string[] | null | undefined;
  if (typeof (headers as Headers).get === 'function') value = (headers as Headers).get(name);
  else value = (headers as Readonly<Record<string, string | readonly string[] | undefined>>)[name];
  if (value === null || value === undefined) return undefined;
  if (typeof value !== 'string') {
    if (!Array.isArray(value) || value.length !== 1 || typeof value[0] !== 'string') {
      throw fail('ERR_OMS_AUTH_MALFORMED', `the request has more than one ${name} header`);
    }
    value = value[0] as string;
  }
  if (value.length > maxBytes)
    throw fail('ERR_OMS_AUTH_TOO_LARGE', `the ${name} header is longer than ${maxBytes} bytes`);
  return value;
}

function cookieValue(header: string, name: string): string | undefined {
  let found: string | undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0 || part.slice(0, eq).trim() !== name) continue;
    if (found !== undefined) throw fail('ERR_OMS_AUTH_MALFORMED', `the request has the ${name} cookie twice`);
    found = part.slice(eq + 1).trim();
  }
  return found;
}

/** `<scheme> <token68>`, with the scheme case-insensitive (RFC 9110 §11.1) and exactly one credential. */
function splitAuthorization(value: string): { scheme: string; token: string } {
  const v = value.trim();
  const sp = v.indexOf(' ');
  if (sp <= 0) throw fail('ERR_OMS_AUTH_MALFORMED', 'the Authorization header has no scheme and credentials');
  const token = v.slice(sp + 1).trimStart();
  if (token.length === 0 || token.includes(' ') || token.includes(',')) {
    throw fail('ERR_OMS_AUTH_MALFORMED', 'the Authorization header must carry exactly one credential');
  }
  // `Bearer` as most clients spell it, without building the lower-case copy
  return { scheme: sp === 6 && v.startsWith('Bearer') ? 'bearer' : v.slice(0, sp).toLowerCase(), token };
}

/** Refuses a raw header list (Node's `rawHeaders`) that carries a single-valued header twice. */
function checkRaw(raw: readonly string[] | undefined): void {
  if (raw === undefined) return;
  if (!Array.isArray(raw)) throw fail('ERR_OMS_AUTH_MALFORMED', 'rawHeaders must be an array');
  let authorization = 0;
  let dpop = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i];
    if (typeof name !== 'string' || (name.length !== 13 && name.length !== 4)) continue;
    const lower = name.toLowerCase();
    if (lower === 'authorization') authorization++;
    else if (lower === 'dpop') dpop++;
  }
  if (authorization > 1)
    throw fail('ERR_OMS_AUTH_MALFORMED', 'the request has more than one authorization header');
  if (dpop > 1) throw fail('ERR_OMS_AUTH_MALFORMED', 'the request has more than one dpop header');
}

/** Reads the credentials of a request: `Authorization` first, then the configured header, then the cookie. */
export function readCredentials(
  headers: HeadersLike,
  where: CredentialLocations,
  maxBytes: number,
  rawHeaders?: readonly string[],
): Credentials {
  if (typeof headers !== 'object' || headers === null) {
    throw fail('ERR_OMS_AUTH_MALFORMED', 'the request has no headers object');
  }
  checkRaw(rawHeaders);
  const limit = maxBytes + 64;
  const authorization = headerValue(headers, 'authorization', limit);
  if (authorization !== undefined) {
    const split = splitAuthorization(authorization);
    const { scheme, token } = split;
    if (scheme === 'bearer') return split as Credentials;
    if (scheme === 'dpop') {
      const proof = headerValue(headers, 'dpop', limit);
      if (proof === undefined)
        throw fail('ERR_OMS_AUTH_DPOP', 'the request uses the DPoP scheme without a DPoP proof');
      return { scheme: 'dpop', token, proof: proof.trim() };
    }
    throw fail(
      'ERR_OMS_AUTH_TOKEN_MISSING',
      'the Authorization header does not use the Bearer or DPoP scheme',
    );
  }
  if (where.header !== undefined) {
    const token = headerValue(headers, where.header, limit);
    if (token !== undefined) return { scheme: 'bearer', token: token.trim() };
  }
  if (where.cookie !== undefined) {
    const cookie = headerValue(headers, 'cookie', 16 * 1024 + limit);
    const token = cookie === undefined ? undefined : cookieValue(cookie, where.cookie);
    if (token !== undefined && token.length > 0) return { scheme: 'bearer', token };
  }
  throw fail('ERR_OMS_AUTH_TOKEN_MISSING', 'the request carries no token');
}
