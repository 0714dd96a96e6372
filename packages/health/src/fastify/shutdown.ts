import type { Server } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import { type GracefulShutdown, type GracefulShutdownOptions, shutdownSequence } from '../shutdown.js';
import { invalid } from '../validate.js';

/**
 * What the Fastify shutdown needs of an app: its node:http(s) server and `close()`. A `FastifyInstance`
 * fits as it is.
 *
 * @example
 * import Fastify from 'fastify';
 * import type { FastifyApp } from '@oms/health/fastify';
 * const app: FastifyApp = Fastify();
 */
export interface FastifyApp {
  readonly server: Server | HttpsServer;
  close(): PromiseLike<unknown>;
}

/**
 * Options of the Fastify {@link gracefulShutdown}: the node:http ones, with the app as `server`.
 *
 * @example
 * import Fastify from 'fastify';
 * import type { HealthRegistry } from '@oms/health';
 * import { gracefulShutdown, type FastifyShutdownOptions } from '@oms/health/fastify';
 * declare const registry: HealthRegistry;
 * const options: FastifyShutdownOptions = { server: Fastify(), registry, drainDelayMs: 5000, timeoutMs: 25_000 };
 * gracefulShutdown(options);
 */
export interface FastifyShutdownOptions extends Omit<GracefulShutdownOptions, 'server'> {
  /** The Fastify app (not the probe server). Its requests are tracked from now on. */
  server: FastifyApp;
}

/**
 * The graceful shutdown of `@oms/health`, draining a Fastify app through its own `close()`: readiness
 * fails at the signal; after `drainDelayMs`, `app.close()` stops accepting and closes idle keep-alive
 * connections (its `preClose` and `onClose` hooks run as Fastify runs them); in-flight requests finish, with
 * `Connection: close` from the signal on; then `hooks` run in order and the process exits 0. Same phases,
 * events, timeouts and forced exits as the node:http version. Keep Fastify's default
 * `forceCloseConnections: 'idle'`: `true` makes `close()` cut the requests still running.
 *
 * @example
 * import Fastify from 'fastify';
 * import { healthRegistry } from '@oms/health';
 * import { gracefulShutdown, healthPlugin } from '@oms/health/fastify';
 * declare const pool: { end(): Promise<void> };
 * const registry = healthRegistry({ service: 'orders', version: '1.4.0' });
 * const app = Fastify();
 * await app.register(healthPlugin, { registry });
 * await app.listen({ port: 8080 });
 * gracefulShutdown({
 *   server: app, registry, drainDelayMs: 5000, timeoutMs: 25_000,
 *   hooks: [{ name: 'pg pool', fn: () => pool.end() }],
 * });
 */
export function gracefulShutdown(opts: FastifyShutdownOptions): GracefulShutdown {
  if (!opts || typeof opts !== 'object') invalid('gracefulShutdown(options) needs an object');
  const app = opts.server;
  if (!app || typeof app.close !== 'function' || typeof app.server?.on !== 'function') {
    invalid('gracefulShutdown({ server }) from @oms/health/fastify needs a Fastify instance');
  }
  return shutdownSequence(opts, { server: app.server, close: () => app.close() });
}
