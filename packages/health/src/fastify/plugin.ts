import type { FastifyContextConfig, FastifyPluginAsync } from 'fastify';
import { healthServer, METHOD_NOT_ALLOWED, probeResponse, probeRoutes } from '../server.js';
import type { HealthRegistry, ReportKind } from '../types.js';
import { invalid, v } from '../validate.js';

/**
 * Options of {@link healthPlugin}.
 *
 * @example
 * import type { HealthPluginOptions } from '@oms/health/fastify';
 * import type { HealthRegistry } from '@oms/health';
 * declare const registry: HealthRegistry;
 * const onTheAppPort: HealthPluginOptions = { registry, prefix: '/ops', paths: { all: '/healthz' } };
 * const onItsOwnPort: HealthPluginOptions = { registry, probeServer: { port: 9090 } };
 */
export interface HealthPluginOptions {
  registry: HealthRegistry;
  /** Mounted under this prefix, e.g. `/ops` gives `/ops/readyz`. Default none. */
  prefix?: string | undefined;
  /** Override the paths. Defaults: `/livez`, `/readyz`, `/startupz`, `/health`. */
  paths?: Partial<Record<ReportKind, string>> | undefined;
  /**
   * Serve the probes on a port of their own (`healthServer`) instead of the app's: it starts with the
   * plugin and closes in the app's `onClose`, after the app server drained. `prefix` does not apply there.
   */
  probeServer?: { port: number; host?: string | undefined } | undefined;
  /**
   * Route config given to every probe route, for the other plugins of the app: for example
   * `{ rateLimit: false }` keeps probes out of `@oms/ratelimit/fastify`'s limits, so a flood of API traffic
   * never turns a readiness probe into a 429. Default none.
   */
  routeConfig?: FastifyContextConfig | undefined;
}

/**
 * Mounts `/livez`, `/readyz`, `/startupz` and `/health` on the Fastify app, answering exactly what
 * `healthServer` answers: `application/health+json`, 200 or 503, `cache-control: no-store`, HEAD without a
 * body, 405 for other methods. With `probeServer` the routes stay off the app and a separate probe port
 * serves them instead. Not encapsulated, so it can be registered anywhere.
 *
 * @example
 * import Fastify from 'fastify';
 * import { healthRegistry } from '@oms/health';
 * import { healthPlugin } from '@oms/health/fastify';
 * const registry = healthRegistry({ service: 'orders', version: '1.4.0' });
 * const app = Fastify();
 * await app.register(healthPlugin, { registry });
 * await app.listen({ port: 8080 });
 */
export const healthPlugin: FastifyPluginAsync<HealthPluginOptions> = async function healthPlugin(app, opts) {
  const registry = opts?.registry;
  if (typeof registry?.handler !== 'function') invalid('healthPlugin needs { registry }');
  const config = opts.routeConfig;
  if (config !== undefined && (config === null || typeof config !== 'object')) {
    invalid('healthPlugin routeConfig must be an object (route config), e.g. { rateLimit: false }');
  }
  if (opts.probeServer) {
    v.integer('probeServer.port', opts.probeServer.port, { max: 65535 });
    const probes = await healthServer({
      registry,
      port: opts.probeServer.port,
      host: opts.probeServer.host,
      paths: opts.paths,
    });
    // onClose runs once the app server has drained, so probes answer for the whole shutdown
    app.addHook('onClose', () => probes.close());
    return;
  }
  for (const [url, kind] of probeRoutes(opts.paths, opts.prefix ?? '')) {
    app.route({
      method: 'GET', // and HEAD: Fastify exposes it and drops the body
      url,
      ...(config ? { config } : {}),
      handler: async (_req, reply) => {
        const r = await probeResponse(registry, kind);
        // a Buffer, so Fastify sends the content-type as it is, without adding a charset
        return reply.code(r.status).headers(r.headers).send(Buffer.from(r.body));
      },
    });
    app.route({
      method: ['DELETE', 'PATCH', 'POST', 'PUT'],
      url,
      ...(config ? { config } : {}),
      handler: async (_req, reply) =>
        reply
          .code(METHOD_NOT_ALLOWED.status)
          .headers(METHOD_NOT_ALLOWED.headers)
          .send(METHOD_NOT_ALLOWED.body),
    });
  }
};

// What fastify-plugin would set, without depending on it: no encapsulation, and a name in errors and logs.
Object.assign(healthPlugin, {
  [Symbol.for('skip-override')]: true,
  [Symbol.for('fastify.display-name')]: '@oms/health',
  [Symbol.for('plugin-meta')]: { name: '@oms/health', fastify: '>=5.0.0' },
});
