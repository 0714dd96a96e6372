import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { OmsHealthError } from './errors.js';
import type { HealthHttpResponse, HealthRegistry, ReportKind } from './types.js';
import { invalid, v } from './validate.js';

/**
 * Options of {@link healthServer}.
 *
 * @example
 * declare const registry: HealthRegistry;
 * const opts: HealthServerOptions = { registry, port: 9090, host: '0.0.0.0', paths: { all: '/healthz' } };
 * const probes = await healthServer(opts);
 */
export interface HealthServerOptions {
  registry: HealthRegistry;
  /** 0 picks a free port. */
  port: number;
  /** Default `0.0.0.0`, so the kubelet can reach it. */
  host?: string | undefined;
  /** Override the paths. Defaults: `/livez`, `/readyz`, `/startupz`, `/health`. */
  paths?: Partial<Record<ReportKind, string>> | undefined;
  /** Aborting it closes the server (or, before it listens, rejects with `ERR_OMS_HEALTH_ABORTED`). */
  signal?: AbortSignal | undefined;
}

/**
 * A running probe server.
 *
 * @example
 * declare const registry: HealthRegistry;
 * const probes: HealthServer = await healthServer({ registry, port: 0, host: '127.0.0.1' });
 * const res = await fetch(`${probes.url}/readyz`);
 * await probes.close();
 */
export interface HealthServer {
  readonly port: number;
  readonly host: string;
  /** `http://host:port`. */
  readonly url: string;
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

const DEFAULT_PATHS: Record<ReportKind, string> = {
  liveness: '/livez',
  readiness: '/readyz',
  startup: '/startupz',
  all: '/health',
};

// What follows is shared with the framework adapters, so every mount answers the same bytes.

/** Path → report kind: the defaults overridden by `paths` (each must start with `/`), under `prefix`. */
export function probeRoutes(
  paths: Partial<Record<ReportKind, string>> | undefined,
  prefix = '',
): Map<string, ReportKind> {
  if (typeof prefix !== 'string' || (prefix !== '' && (!prefix.startsWith('/') || prefix.endsWith('/'))))
    invalid(`prefix must start with / and not end with one, like /ops (got ${prefix})`);
  const routes = new Map<string, ReportKind>();
  for (const [kind, path] of Object.entries({ ...DEFAULT_PATHS, ...paths })) {
    if (typeof path !== 'string' || !path.startsWith('/'))
      invalid(`paths.${kind} must start with / (got ${path})`);
    routes.set(`${prefix}${path}`, kind as ReportKind);
  }
  return routes;
}

/** The answer to a probe method other than GET and HEAD. */
export const METHOD_NOT_ALLOWED: HealthHttpResponse = Object.freeze({
  status: 405,
  headers: Object.freeze({ allow: 'GET, HEAD', 'content-type': 'text/plain' }),
  body: 'method not allowed\n',
});

/**
 * The probe's answer: the registry's health+json with its length, or a health+json 503 when the report
 * itself failed (a probe must never hang or answer 500).
 */
export function probeResponse(registry: HealthRegistry, kind: ReportKind): Promise<HealthHttpResponse> {
  // a client that hangs up early aborts nothing shared: report() runs are single-flight anyway
  return registry.handler(kind).then(
    (r) => ({ ...r, headers: { ...r.headers, 'content-length': String(Buffer.byteLength(r.body)) } }),
    (e: unknown) => ({
      status: 503,
      headers: { 'content-type': 'application/health+json', 'cache-control': 'no-store' },
      body: JSON.stringify({
        status: 'fail',
        serviceId: registry.service,
        version: registry.version,
        output: e instanceof Error ? e.message : 'health report failed',
        checks: {},
      }),
    }),
  );
}

/** Answers `req` on plain node:http (or Connect/Express) if its path is a probe; false when it is not. */
export function serveProbe(
  registry: HealthRegistry,
  routes: ReadonlyMap<string, ReportKind>,
  req: IncomingMessage,
  res: ServerResponse,
): boolean {
  const path = (req.url ?? '/').split('?', 1)[0] ?? '/';
  const kind = routes.get(path);
  if (!kind) return false;
  const write = (r: HealthHttpResponse) => {
    res.writeHead(r.status, r.headers).end(req.method === 'HEAD' ? undefined : r.body);
  };
  if (req.method !== 'GET' && req.method !== 'HEAD') write(METHOD_NOT_ALLOWED);
  else void probeResponse(registry, kind).then(write);
  return true;
}

/**
 * Serves `/livez`, `/readyz`, `/startupz` and `/health` (every check) as `application/health+json` on a
 * port of its own, so probes keep working while the application port drains or is saturated. Resolves
 * once it is listening.
 *
 * @example
 * declare const health: HealthRegistry;
 * const probes = await healthServer({ registry: health, port: 9090 });
 * // curl -i http://localhost:9090/readyz
 * await probes.close();
 */
export async function healthServer(opts: HealthServerOptions): Promise<HealthServer> {
  if (!opts || typeof opts.registry?.report !== 'function')
    invalid('healthServer({ registry }) needs a registry');
  v.integer('port', opts.port, { max: 65535 });
  const host = opts.host ?? '0.0.0.0';
  const routes = probeRoutes(opts.paths);
  const registry = opts.registry;

  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    if (!serveProbe(registry, routes, req, res)) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    }
  };

  const signal = opts.signal;
  const abortError = () =>
    new OmsHealthError('ERR_OMS_HEALTH_ABORTED', 'healthServer() was aborted by its signal', false, {
      cause: signal?.reason,
    });
  if (signal?.aborted) throw abortError();
  const server = createServer(onRequest);
  // probes are tiny and frequent; do not let a slow kubelet connection pin sockets for long
  server.keepAliveTimeout = 5_000;
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    const onAbort = () => {
      server.off('error', fail);
      server.close();
      reject(abortError());
    };
    const fail = (e: Error) => {
      signal?.removeEventListener('abort', onAbort);
      reject(e);
    };
    server.once('error', fail);
    signal?.addEventListener('abort', onAbort, { once: true });
    server.listen(opts.port, host, () => {
      server.off('error', fail);
      signal?.removeEventListener('abort', onAbort);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= new Promise<void>((resolve) => {
      signal?.removeEventListener('abort', onAbortLater);
      server.close(() => resolve());
      server.closeAllConnections();
    });
    return closing;
  };
  const onAbortLater = () => void close();
  signal?.addEventListener('abort', onAbortLater, { once: true });
  const shownHost = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return {
    port: addr.port,
    host: addr.address,
    url: `http://${shownHost === '0.0.0.0' ? '127.0.0.1' : shownHost === '[::]' ? '[::1]' : shownHost}:${addr.port}`,
    close,
    [Symbol.asyncDispose]: close,
  };
}
