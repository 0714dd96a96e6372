import type { FastifyPluginCallback, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify';
import { compileLimit, PROBLEM_JSON, problemBody, responseHeaders } from '../http-adapter.js';
import { limitAll } from '../limit-all.js';
import type { LimitAllResult } from '../types.js';
import type { FastifyRateLimitOptions, FastifyScope } from './types.js';

const plugin: FastifyPluginCallback<FastifyRateLimitOptions> = (app, o, done) => {
  let limit: ReturnType<typeof compileLimit<FastifyRequest>>;
  try {
    limit = compileLimit<FastifyRequest>(o);
  } catch (e) {
    done(e as Error);
    return;
  }
  const { cost } = limit;
  // a route's override is checked when the route is registered, so a wrong one fails at start-up
  const checked = new WeakSet<readonly FastifyScope[]>();
  app.addHook('onRoute', (route) => {
    const own = route.config?.rateLimit;
    if (own === undefined || own === false) return;
    limit.check(own, `route ${route.method} ${route.url}: config.rateLimit`);
    checked.add(own);
  });

  const send = (reply: FastifyReply, r: LimitAllResult, done: HookHandlerDoneFunction) => {
    const h = responseHeaders(r);
    reply.header('RateLimit-Policy', h['RateLimit-Policy']);
    reply.header('RateLimit', h.RateLimit);
    if (r.allowed) return done();
    const retryAfter = h['Retry-After'] ?? '1';
    reply
      .code(429)
      .header('Retry-After', retryAfter)
      .type(PROBLEM_JSON)
      .send(problemBody(r, Number(retryAfter)));
  };

  app.addHook('onRequest', (req, reply, done) => {
    const own = req.routeOptions.config?.rateLimit;
    if (own === false) return done();
    if (own !== undefined && !checked.has(own)) {
      // a route registered before the plugin never went through our onRoute: check its override once, here
      limit.check(own, `route ${req.routeOptions.method} ${req.routeOptions.url}: config.rateLimit`);
      checked.add(own);
    }
    limitAll(limit.scopesOf(req, own), cost ? { cost: cost(req) } : undefined).then(
      (r) => send(reply, r, done),
      done,
    );
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
