import { invalidOption } from './errors.js';
import type { Decision } from './types.js';

/**
 * Response headers for a decision, per draft-ietf-httpapi-ratelimit-headers (structured fields).
 *
 * @example
 * import type { ServerResponse } from 'node:http';
 * import { type Decision, httpHeaders, type RateLimitHeaders } from '@oms/ratelimit';
 * declare const res: ServerResponse;
 * declare const decision: Decision;
 * const headers: RateLimitHeaders = httpHeaders(decision);
 * res.writeHead(429, { ...headers });
 */
export interface RateLimitHeaders {
  /** Every policy that applied, e.g. `"api";q=100;w=60`. */
  'RateLimit-Policy': string;
  /** The policy closest to its limit, e.g. `"api";r=0;t=42`. */
  RateLimit: string;
  /** Seconds until a retry can succeed; only on denial. */
  'Retry-After'?: string;
}

// Policy names are restricted to [A-Za-z0-9_.-], so they need no escaping inside an sf-string.
const item = (name: string) => `"${name}"`;

/**
 * A whole number >= 0 as decimal text, as `String(n)` gives it. V8 formats a number beyond 32-bit integers
 * through its full double-to-text routine (about 150 ns a call, a tenth of a request's whole plugin cost when
 * a limit is in the billions), but two halves of at most nine digits each take its integer fast path.
 */
export function wholeText(n: number): string {
  if (n < 2147483648 || !(n < 9007199254740992)) return `${n}`;
  let hi = Math.floor(n / 1e9);
  let lo = n - hi * 1e9;
  // n / 1e9 can round up to the next integer when n is just below a multiple of 1e9
  if (lo < 0) {
    hi -= 1;
    lo += 1e9;
  }
  // lo + 1e9 is ten digits below 2^31; its leading 1 keeps lo's zeros
  return `${hi}${`${lo + 1e9}`.slice(1)}`;
}

/**
 * Builds `RateLimit-Policy`, `RateLimit` and (on denial) `Retry-After` from one decision or several (for
 * example `limitAll(...).decisions`). `RateLimit-Policy` lists every policy; `RateLimit` reports the one
 * with the lowest remaining (a denied one first), as the draft asks for several policies.
 *
 * @example
 * import type { ServerResponse } from 'node:http';
 * import { httpHeaders, type RateLimiter } from '@oms/ratelimit';
 * declare const limiter: RateLimiter;
 * declare const res: ServerResponse;
 * const d = await limiter.consume('user:42');
 * for (const [h, v] of Object.entries(httpHeaders(d))) res.setHeader(h, v);
 * // RateLimit-Policy: "api";q=100;w=60   RateLimit: "api";r=99;t=1
 */
export function httpHeaders(decision: Decision | readonly Decision[]): RateLimitHeaders {
  const list: readonly Decision[] = Array.isArray(decision) ? decision : [decision as Decision];
  if (list.length === 0) throw invalidOption('httpHeaders() needs at least one decision');
  for (const d of list) {
    if (!d || typeof d !== 'object' || !d.policy)
      throw invalidOption('httpHeaders() takes decisions from this package');
  }
  const h: RateLimitHeaders = {
    'RateLimit-Policy': policyHeader(list),
    RateLimit: rateLimitHeader(list),
  };
  const retry = retryAfterHeader(list);
  if (retry !== undefined) h['Retry-After'] = retry;
  return h;
}

/** One policy as `RateLimit-Policy` lists it: `"api";q=100;w=60`. */
export const policyItem = (name: string, limit: number, windowSec: number): string =>
  `${item(name)};q=${limit};w=${windowSec}`;

/** `RateLimit-Policy`: every policy once, in order. */
export function policyHeader(list: readonly Decision[]): string {
  if (list.length === 1) {
    const d = list[0]!;
    return policyItem(d.policy.name, d.limit, d.policy.windowSec);
  }
  const policies: string[] = [];
  const seen = new Set<string>();
  for (const d of list) {
    if (!seen.has(d.policy.name)) {
      seen.add(d.policy.name);
      policies.push(policyItem(d.policy.name, d.limit, d.policy.windowSec));
    }
  }
  return policies.join(', ');
}

/** `RateLimit`: the policy closest to its limit (a denied one first, then the lowest remaining, then the longest wait). */
export function rateLimitHeader(list: readonly Decision[]): string {
  let pick = list[0]!;
  for (let i = 1; i < list.length; i++) {
    const d = list[i]!;
    if (
      (!d.allowed && pick.allowed) ||
      (d.allowed === pick.allowed &&
        (d.remaining < pick.remaining ||
          (d.remaining === pick.remaining && d.retryAfterMs > pick.retryAfterMs)))
    ) {
      pick = d;
    }
  }
  return `${item(pick.policy.name)};r=${wholeText(Math.max(0, Math.floor(pick.remaining)))};t=${wholeText(Math.ceil(pick.resetMs / 1000))}`;
}

/** `Retry-After` in whole seconds (at least 1) when a decision denied, else undefined. */
export function retryAfterHeader(list: readonly Decision[]): string | undefined {
  let denied = false;
  let retry = 0;
  for (const d of list) {
    if (d.allowed) continue;
    denied = true;
    if (d.retryAfterMs > retry) retry = d.retryAfterMs;
  }
  return denied ? String(Math.max(1, Math.ceil(retry / 1000))) : undefined;
}
