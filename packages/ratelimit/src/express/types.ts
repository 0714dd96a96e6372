import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TrustProxy } from '../client-key.js';
import type { RateLimiter } from '../types.js';

/**
 * One scope of a request: a limiter and how to derive the request's key for it.
 *
 * @example
 * import type { IncomingMessage } from 'node:http';
 * import { gcra, rateLimiter } from '@oms/ratelimit';
 * import type { RequestScope } from '@oms/ratelimit/express';
 * const perUser = rateLimiter({ name: 'user', algorithm: gcra({ limit: 100, periodMs: 60_000 }) });
 * const scope: RequestScope<IncomingMessage> = {
 *   limiter: perUser,
 *   key: (req) => String(req.headers['x-user-id'] ?? 'anonymous'),
 * };
 */
export interface RequestScope<R> {
  limiter: RateLimiter;
  /**
   * The request's key for this limiter: a non-empty string of at most 1 KiB, or a promise of one (for a key
   * that needs I/O, such as the verified principal: every key of a request is awaited, then one `limitAll`
   * charges all scopes or none). Default: the client's address by `clientKey`, with the adapter's
   * `trustProxy` and `ipv6Prefix`. A key function that throws or rejects fails the request, charging nothing.
   */
  key?: (req: R) => string | PromiseLike<string>;
}

/**
 * What both adapters take.
 *
 * @example
 * import type { IncomingMessage } from 'node:http';
 * import { rateLimiter, tokenBucket } from '@oms/ratelimit';
 * import type { RequestLimitOptions } from '@oms/ratelimit/express';
 * const perIp = rateLimiter({ name: 'ip', algorithm: tokenBucket({ capacity: 60, refillPerSec: 1 }) });
 * const o: RequestLimitOptions<IncomingMessage> = { scopes: [{ limiter: perIp }], trustProxy: 1 };
 */
export interface RequestLimitOptions<R> {
  /** Checked together by `limitAll` on every request: all charged or none. At least one. */
  scopes: readonly RequestScope<R>[];
  /** For the default key: which proxies may set X-Forwarded-For (see `clientKey`). Default `false`. */
  trustProxy?: TrustProxy;
  /** For the default key: the prefix grouping IPv6 clients. Default 64. */
  ipv6Prefix?: number;
  /** Units a request takes in every scope. Default 1. */
  cost?: (req: R) => number;
  /**
   * The 429 problem's `type` (a URI reference; default `about:blank`) and a `code` member added to the body,
   * so a client can tell this problem from the app's others the way it tells those apart.
   */
  problem?: { type?: string; code?: string };
}

/**
 * Connect-style middleware: Express 5, Connect, or plain node:http with a `next` of your own.
 *
 * @example
 * import { createServer } from 'node:http';
 * import { rateLimiter, tokenBucket } from '@oms/ratelimit';
 * import { type RateLimitMiddleware, rateLimitMiddleware } from '@oms/ratelimit/express';
 * const perIp = rateLimiter({ name: 'ip', algorithm: tokenBucket({ capacity: 60, refillPerSec: 1 }) });
 * const limit: RateLimitMiddleware = rateLimitMiddleware({ scopes: [{ limiter: perIp }] });
 * createServer((req, res) =>
 *   limit(req, res, (err) => {
 *     if (err) res.writeHead(500).end();
 *     else res.end('ok\n');
 *   }),
 * ).listen(3000);
 */
export type RateLimitMiddleware<R extends IncomingMessage = IncomingMessage> = (
  req: R,
  res: ServerResponse,
  next: (err?: unknown) => void,
) => void;
