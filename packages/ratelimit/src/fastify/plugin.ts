import type { FastifyPluginCallback, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify';
import {
  compileLimit,
  PROBLEM_JSON,
  rateLimitValue,
  retryAfterValue,
  type ScopePlan,
} from '../http-adapter.js';
import type { LimitAllResult } from '../types.js';
import type { FastifyRateLimitOptions } from './types.js';

type Plan = ScopePlan<FastifyRequest>;

/** Sets the headers on every answer, and answers a denial itself. */
function answer(reply: FastifyReply, plan: Plan, r: LimitAllResult, done: HookHandlerDoneFunction): void {
  // lower case, as Fastify stores (and sends) header names: it then has nothing to convert
  reply.header('ratelimit-policy', plan.policyHeader(r));
  reply.header('ratelimit', rateLimitValue(r));
  if (r.allowed) {
    done();
    return;
  }
  const retryAfter = retryAfterValue(r);
  reply
    .code(429)
    .header('retry-after', retryAfter)
    .type(PROBLEM_JSON)
    .send(plan.problemBody(r, Number(retryAfter)));
}

const plugin: FastifyPluginCallback<FastifyRateLimitOptions> = (app, o, done) => {
  let limit: ReturnType<typeof compileLimit<FastifyRequest>>;
  try {
    limit = compileLimit<FastifyRequest>(o);
  } catch (e) {
    done(e as Error);
    return;
  }
  // a route's override is checked and compiled when the route is registered, so a wrong one fails at start-up
  app.addHook('onRoute', (route) => {
    const own = route.config?.rateLimit;
    if (own === undefined || own === false) return;
    limit.planOf(own, `route ${route.method} ${route.url}: config.rateLimit`);
  });

  app.addHook('onRequest', (req, reply, done) => {
    const { config } = req.routeOptions;
    const own = config?.rateLimit;
    if (own === false) return done();
    // a route registered before the plugin never went through our onRoute: its override is compiled here, once
    const plan =
      own === undefined
        ? limit.plan
        : limit.planOf(own, `route ${config.method} ${config.url}: config.rateLimit`);
    let r: LimitAllResult | Promise<LimitAllResult>;
    try {
      r = plan.limit(req);
    } catch (e) {
      done(e as Error);
      return;
    }
    if (r instanceof Promise) r.then((r) => answer(reply, plan, r, done), done);
    else answer(reply, plan, r, done);
  });
  done();
};

/**
 * A Fastify plugin that rate limits every route of the instance it is registered on (and its children): one
 * `limitAll` over `scopes` per request (all charged or none), `RateLimit-Policy` and `RateLimit` on every
 * response, and a denial answered with 429, `Retry-After` and an RFC 9457 `application/problem+json` body
 * naming the policy that denied (never the key). A scope without `key` keys by client address (`clientKey`
 * with `trustProxy`; Fastify's own `trustProxy` is not consulted). When the store fails, each limiter's
 * `onStoreError` decides, as for `limitAll`. Per route, `config: { rateLimit: false }` turns it off and
 * `config: { rateLimit: [...scopes] }` checks other scopes instead. It runs in `onRequest`, before the body
 * is read, and does not encapsulate (like a plugin wrapped by fastify-plugin).
 *
 * @example
 * import Fastify from 'fastify';
 * import { gcra, rateLimiter, tokenBucket } from '@oms/ratelimit';
 * import { rateLimitPlugin } from '@oms/ratelimit/fastify';
 * const perIp = rateLimiter({ name: 'ip', algorithm: tokenBucket({ capacity: 60, refillPerSec: 1 }) });
 * const login = rateLimiter({ name: 'login', algorithm: gcra({ limit: 5, periodMs: 60_000 }) });
 * const app = Fastify();
 * await app.register(rateLimitPlugin, { scopes: [{ limiter: perIp }], trustProxy: 1 });
 * app.get('/livez', { config: { rateLimit: false } }, async () => 'ok');
 * app.post('/login', { config: { rateLimit: [{ limiter: perIp }, { limiter: login }] } }, async () => 'ok');
 */
export const rateLimitPlugin = Object.assign(plugin, {
  [Symbol.for('skip-override')]: true,
  [Symbol.for('fastify.display-name')]: '@oms/ratelimit',
});
