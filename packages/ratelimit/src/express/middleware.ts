import type { IncomingMessage } from 'node:http';
import { compileLimit, PROBLEM_JSON, problemBody, responseHeaders } from '../http-adapter.js';
import { limitAll } from '../limit-all.js';
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
  const limit = compileLimit<R>(o);
  const { cost } = limit;
  return function omsRateLimit(req, res, next) {
    let pending: ReturnType<typeof limitAll>;
    try {
      pending = limitAll(limit.scopesOf(req), cost ? { cost: cost(req) } : undefined);
    } catch (e) {
      next(e);
      return;
    }
    pending.then((r) => {
      const h = responseHeaders(r);
      res.setHeader('RateLimit-Policy', h['RateLimit-Policy']);
      res.setHeader('RateLimit', h.RateLimit);
      if (r.allowed) return next();
      const retryAfter = h['Retry-After'] ?? '1';
      const body = problemBody(r, Number(retryAfter));
      res.statusCode = 429;
      res.setHeader('Retry-After', retryAfter);
      res.setHeader('Content-Type', PROBLEM_JSON);
      res.setHeader('Content-Length', Buffer.byteLength(body));
      res.end(body);
    }, next);
  };
}
