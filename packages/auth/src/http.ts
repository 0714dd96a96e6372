import { invalidOption } from './errors.js';
import type { AuthorizeResult } from './types.js';

/**
 * What to answer a denied request with: status, headers and an RFC 9457 problem body.
 *
 * @example
 * import { denialResponse, type DenialResponse } from '@oms/auth';
 * const denial: DenialResponse | undefined = denialResponse({ status: 403, code: 'ERR_OMS_AUTH_FORBIDDEN', reason: 'no grant' });
 * const status = denial?.status; // 403
 */
export interface DenialResponse {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  /** `application/problem+json`; `type` is a stable URN per code, and no detail that leaks which check failed. */
  readonly body: string;
}

/**
 * Options of `denialResponse`.
 *
 * @example
 * import { denialResponse, type DenialOptions } from '@oms/auth';
 * const options: DenialOptions = { realm: 'orders-api' };
 * const denial = denialResponse({ status: 401, code: 'ERR_OMS_AUTH_TOKEN_MISSING', reason: 'no token', wwwAuthenticate: 'Bearer' }, options);
 */
export interface DenialOptions {
  /** The `realm` of the `WWW-Authenticate` challenge (RFC 6750 §3): printable ASCII without `"` or `\`. */
  realm?: string;
  /** `Retry-After` of a 503 whose source did not say when to retry, in seconds. Default 5. */
  retryAfterSec?: number;
}

const REALM = /^[\x20-\x7e]{1,200}$/;

/** Refuses a realm that cannot sit in a quoted-string as is. Adapters call it at construction. */
export function checkRealm(realm: unknown): string | undefined {
  if (realm === undefined) return undefined;
  if (typeof realm !== 'string' || !REALM.test(realm) || /["\\]/.test(realm)) {
    throw invalidOption(
      `realm must be 1 to 200 printable ASCII characters without " or \\ (got ${JSON.stringify(realm)})`,
    );
  }
  return realm;
}

/** `Bearer error="invalid_token"` with a realm: `Bearer realm="api", error="invalid_token"`. */
function withRealm(challenge: string, realm: string): string {
  const sp = challenge.indexOf(' ');
  return sp < 0
    ? `${challenge} realm="${realm}"`
    : `${challenge.slice(0, sp)} realm="${realm}", ${challenge.slice(sp + 1)}`;
}

/** A Retry-After longer than this is capped: a client should come back within minutes, not give up for the day. */
const MAX_RETRY_AFTER_SEC = 300;

/** The configured default Retry-After, checked; adapters call it at construction. */
export function retryAfterSec(value: unknown): number {
  if (value === undefined) return 5;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1 || value > MAX_RETRY_AFTER_SEC) {
    throw invalidOption(
      `retryAfterSec must be an integer from 1 to ${MAX_RETRY_AFTER_SEC} (got ${String(value)})`,
    );
  }
  return value;
}

const TITLES: Record<number, string> = {
  401: 'Unauthorized',
  403: 'Forbidden',
  503: 'Service Unavailable',
};

/**
 * The HTTP answer to a decision that is not 200: `WWW-Authenticate` (RFC 6750 / RFC 9449), `DPoP-Nonce` when a
 * nonce is required, `Retry-After` for a 503, and a problem+json body carrying the code. Framework glue calls it so
 * every service answers the same way. Returns `undefined` for a 200. With `realm`, the challenge names it
 * (`Bearer realm="orders-api", error="invalid_token"`). `Retry-After` is when the failing source will try again
 * (a JWKS source's remaining cooldown, a revocation list's next poll), or `retryAfterSec` when it does not say.
 *
 * @example
 * import { createServer } from 'node:http';
 * import { denialResponse, type Authorizer } from '@oms/auth';
 * declare const auth: Authorizer;
 * createServer(async (req, res) => {
 *   const decision = await auth.authorize({ method: req.method ?? 'GET', url: req.url ?? '/', headers: req.headers });
 *   const denial = denialResponse(decision);
 *   if (denial) return void res.writeHead(denial.status, denial.headers).end(denial.body);
 *   res.end('ok');
 * });
 */
export function denialResponse(result: AuthorizeResult, opts?: DenialOptions): DenialResponse | undefined {
  if (result.status === 200) return undefined;
  const realm = checkRealm(opts?.realm);
  const headers: Record<string, string> = {
    'content-type': 'application/problem+json',
    'cache-control': 'no-store',
  };
  if (result.wwwAuthenticate !== undefined) {
    headers['www-authenticate'] =
      realm === undefined ? result.wwwAuthenticate : withRealm(result.wwwAuthenticate, realm);
  }
  if (result.dpopNonce !== undefined) headers['dpop-nonce'] = result.dpopNonce;
  const fallbackSec = retryAfterSec(opts?.retryAfterSec);
  if (result.status === 503) {
    const ms = result.retryAfterMs;
    const sec =
      typeof ms === 'number' && Number.isFinite(ms) && ms > 0
        ? Math.min(MAX_RETRY_AFTER_SEC, Math.ceil(ms / 1000))
        : fallbackSec;
    headers['retry-after'] = String(sec);
  }
  const code = result.code ?? 'ERR_OMS_AUTH_FORBIDDEN';
  const body = JSON.stringify({
    type: `urn:oms:auth:${code.slice('ERR_OMS_AUTH_'.length).toLowerCase().replaceAll('_', '-')}`,
    title: TITLES[result.status] ?? 'Error',
    status: result.status,
    code,
  });
  return { status: result.status, headers, body };
}
