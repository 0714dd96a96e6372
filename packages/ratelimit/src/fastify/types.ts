import type { FastifyRequest } from 'fastify';
import type { RequestLimitOptions, RequestScope } from '../express/types.js';

/**
 * One scope of the Fastify plugin: a limiter and the request's key for it (default: the client address).
 *
 * @example
 * import { gcra, rateLimiter } from '@oms/ratelimit';
 * import type { FastifyScope } from '@oms/ratelimit/fastify';
 * const perUser = rateLimiter({ name: 'user', algorithm: gcra({ limit: 100, periodMs: 60_000 }) });
 * const scope: FastifyScope = { limiter: perUser, key: (req) => String(req.headers['x-user-id'] ?? 'anonymous') };
 */
export type FastifyScope = RequestScope<FastifyRequest>;

/**
 * Options of the Fastify plugin.
 *
 * @example
 * import { rateLimiter, tokenBucket } from '@oms/ratelimit';
 * import type { FastifyRateLimitOptions } from '@oms/ratelimit/fastify';
 * const perIp = rateLimiter({ name: 'ip', algorithm: tokenBucket({ capacity: 60, refillPerSec: 1 }) });
 * const o: FastifyRateLimitOptions = { scopes: [{ limiter: perIp }], trustProxy: ['10.0.0.0/8'] };
 */
export type FastifyRateLimitOptions = RequestLimitOptions<FastifyRequest>;

declare module 'fastify' {
  interface FastifyContextConfig {
    /**
     * `false`: this route is not rate limited (and gets no RateLimit headers). A list of scopes: checked
     * instead of the plugin's for this route.
     */
    rateLimit?: false | readonly FastifyScope[];
  }
}
