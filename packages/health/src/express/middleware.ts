import type { IncomingMessage, ServerResponse } from 'node:http';
import { probeRoutes, serveProbe } from '../server.js';
import type { HealthRegistry, ReportKind } from '../types.js';
import { invalid } from '../validate.js';

/**
 * Options of {@link healthMiddleware}.
 *
 * @example
 * import type { HealthMiddlewareOptions } from '@oms/health/express';
 * import type { HealthRegistry } from '@oms/health';
 * declare const registry: HealthRegistry;
 * const options: HealthMiddlewareOptions = { registry, prefix: '/ops', paths: { all: '/healthz' } };
 */
export interface HealthMiddlewareOptions {
  registry: HealthRegistry;
  /** Answer under this prefix, e.g. `/ops` gives `/ops/readyz`. Default none. */
  prefix?: string | undefined;
  /** Override the paths. Defaults: `/livez`, `/readyz`, `/startupz`, `/health`. */
  paths?: Partial<Record<ReportKind, string>> | undefined;
}

/**
 * An Express 5 (or Connect, or node:http) middleware answering `/livez`, `/readyz`, `/startupz` and
 * `/health` exactly as `healthServer` does: `application/health+json`, 200 or 503, `cache-control:
 * no-store`, HEAD without a body, 405 for other methods. Any other path goes to `next()`. Paths are
 * matched relative to where it is mounted (`app.use('/ops', …)` works too).
 *
 * @example
 * import express from 'express';
 * import { healthRegistry } from '@oms/health';
 * import { gracefulShutdown, healthMiddleware } from '@oms/health/express';
 * const registry = healthRegistry({ service: 'orders', version: '1.4.0' });
 * const app = express();
 * app.use(healthMiddleware({ registry }));
 * const server = app.listen(8080);
 * gracefulShutdown({ server, registry, drainDelayMs: 5000, timeoutMs: 25_000 });
 */
export function healthMiddleware(
  opts: HealthMiddlewareOptions,
): (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) => void {
  const registry = opts?.registry;
  if (typeof registry?.handler !== 'function') invalid('healthMiddleware needs { registry }');
  const routes = probeRoutes(opts.paths, opts.prefix ?? '');
  return function healthMiddleware(req, res, next) {
    if (!serveProbe(registry, routes, req, res)) next();
  };
}
