import type { IncomingMessage, ServerResponse } from 'node:http';
import { compileLimit, PROBLEM_JSON, rateLimitValue, retryAfterValue } from '../http-adapter.js';
import type { LimitAllResult } from '../types.js';
import type { RateLimitMiddleware, RequestLimitOptions } from './types.js';

/**
 * Rate limits every request it sees: checks all `scopes` with one `limitAll` call (all charged or none), puts
 * `RateLimit-Policy` and `RateLimit` on every response, and answers a denial itself with 429, `Retry-After`
 * and an RFC 9457 `application/problem+json` body naming the policy that denied (never the key). A scope
 * without `key` keys by client address (`clientKey`, reading X-Forwarded-For only as far as `trustProxy`
 * says, whatever Express's own `trust proxy` setting is). When the store fails, each limiter's
 * `onStoreError` decides, as it does for `limitAll`. An error (a key function that throws, an invalid key, a
 * closed limiter) goes to `next(err)`.
 *
 * @example
 * import express from 'express';
 * import { gcra, rateLimiter, tokenBucket } from '@oms/ratelimit';
 * import { rateLimitMiddleware } from '@oms/ratelimit/express';
 * const perIp = rateLimiter({ name: 'ip', algorithm: tokenBucket({ capacity: 60, refillPerSec: 1 }) });
 * const perUser = rateLimiter({ name: 'user', algorithm: gcra({ limit: 100, periodMs: 60_000 }) });
 * const app = express();
 * app.use(
 *   rateLimitMiddleware({
 *     scopes: [{ limiter: perIp }, { limiter: perUser, key: (req) => String(req.headers['x-user-id'] ?? 'anonymous') }],
 *     trustProxy: 1,
 *   }),
 * );
 * app.get('/', (_req, res) => void res.send('ok'));
 */
export function rateLimitMiddleware<R extends IncomingMessage = IncomingMessage>(
  o: RequestLimitOptions<R>,
): RateLimitMiddleware<R> {
  const { plan } = compileLimit<R>(o);
  const answer = (res: ServerResponse, r: LimitAllResult, next: (err?: unknown) => void): void => {
    res.setHeader('RateLimit-Policy', plan.policyHeader(r));
    res.setHeader('RateLimit', rateLimitValue(r));
    if (r.allowed) {
      next();
      return;
    }
    const retryAfter = retryAfterValue(r);
    const body = plan.problemBody(r, Number(retryAfter));
    res.statusCode = 429;
    res.setHeader('Retry-After', retryAfter);
    res.setHeader('Content-Type', PROBLEM_JSON);
    res.setHeader('Content-Length', Buffer.byteLength(body));
    res.end(body);
  };
  return function omsRateLimit(req, res, next) {
    let r: LimitAllResult | Promise<LimitAllResult>;
    try {
      r = plan.limit(req);
    } catch (e) {
      next(e);
      return;
    }
    if (r instanceof Promise) r.then((r) => answer(res, r, next), next);
    else answer(res, r, next);
  };
}
