// The framework-free half of both adapters: it knows node:http requests and this package, nothing else, so
// the Fastify plugin shares it without ever loading Express.
import { clientKey } from './client-key.js';
import { invalidOption } from './errors.js';
import type { RequestLimitOptions, RequestScope } from './express/types.js';
import { httpHeaders, type RateLimitHeaders } from './http-headers.js';
import type { LimitAllResult, Scope } from './types.js';

/** Options checked once, ready for the hot path. */
export interface CompiledLimit<R> {
  scopesOf(req: R, scopes?: readonly RequestScope<R>[]): Scope[];
  cost: ((req: R) => number) | undefined;
  /** Validates a list of scopes (the plugin's, or a route's override) and says where it is wrong. */
  check(scopes: unknown, where: string): readonly RequestScope<R>[];
  readonly scopes: readonly RequestScope<R>[];
}

function check<R>(scopes: unknown, where: string): readonly RequestScope<R>[] {
  if (!Array.isArray(scopes) || scopes.length === 0) {
    throw invalidOption(`${where} must be a non-empty array of { limiter, key? }`);
  }
  scopes.forEach((s: Partial<RequestScope<R>> | null, i) => {
    if (s === null || typeof s !== 'object' || typeof s.limiter?.consume !== 'function') {
      throw invalidOption(`${where}[${i}].limiter must be a limiter made by rateLimiter()`);
    }
    if (s.key !== undefined && typeof s.key !== 'function') {
      throw invalidOption(
        `${where}[${i}].key must be a function (req) => string, or left out for the client IP`,
      );
    }
  });
  return scopes as readonly RequestScope<R>[];
}

/** What both frameworks' requests have: the connection and the headers. */
export interface PeerRequest {
  readonly socket: { readonly remoteAddress?: string | undefined };
  readonly headers: Record<string, string | readonly string[] | undefined>;
}

/** Checks the options once and returns what a request needs: its scopes with their keys. */
export function compileLimit<R extends PeerRequest>(o: RequestLimitOptions<R>): CompiledLimit<R> {
  if (o === null || typeof o !== 'object') throw invalidOption('the rate-limit adapter needs { scopes }');
  const scopes = check<R>(o.scopes, 'scopes');
  if (o.cost !== undefined && typeof o.cost !== 'function') {
    throw invalidOption('cost must be a function (req) => number');
  }
  const keyOpts = {
    ...(o.trustProxy === undefined ? {} : { trustProxy: o.trustProxy }),
    ...(o.ipv6Prefix === undefined ? {} : { ipv6Prefix: o.ipv6Prefix }),
  };
  // clientKey validates trustProxy and ipv6Prefix; doing it once here turns a typo into a start-up error
  clientKey({ ip: '127.0.0.1', headers: {} }, keyOpts);
  const trust = o.trustProxy ?? false;
  // With no proxy trusted the key depends on the connection alone, so a keep-alive connection computes it once.
  const bySocket = trust === false || trust === 0 ? new WeakMap<object, string>() : undefined;
  const ipKey = (req: R): string => {
    const socket = req.socket;
    const ip = socket.remoteAddress;
    if (bySocket === undefined || ip === undefined) return clientKey({ ip, headers: req.headers }, keyOpts);
    let key = bySocket.get(socket);
    if (key === undefined) {
      key = clientKey({ ip, headers: req.headers }, keyOpts);
      bySocket.set(socket, key);
    }
    return key;
  };
  return {
    scopes,
    cost: o.cost,
    check,
    scopesOf(req, list = scopes) {
      const out: Scope[] = new Array(list.length);
      let ip: string | undefined;
      for (let i = 0; i < list.length; i++) {
        const s = list[i]!;
        let key: string;
        if (s.key) key = s.key(req);
        else {
          // one clientKey per request however many scopes key by IP
          ip ??= ipKey(req);
          key = ip;
        }
        out[i] = { limiter: s.limiter, key };
      }
      return out;
    },
  };
}

/** The headers to send: `RateLimit-Policy` and `RateLimit` always, `Retry-After` on a denial. */
export const responseHeaders = (r: LimitAllResult): RateLimitHeaders => httpHeaders(r.decisions);

/**
 * The RFC 9457 body of a 429: it names the policy that denied (the limiter's name), never the key, which may
 * be a user id or an address.
 */
export function problemBody(r: LimitAllResult, retryAfterSec: number): string {
  const scope = r.deniedBy?.name ?? 'unknown';
  return JSON.stringify({
    type: 'about:blank',
    title: 'Too Many Requests',
    status: 429,
    detail: `Rate limit "${scope}" exceeded; retry in ${retryAfterSec} s.`,
    scope,
    retryAfterSec,
  });
}

export const PROBLEM_JSON = 'application/problem+json';
