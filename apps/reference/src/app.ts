import { join } from 'node:path';
import type { PGlite } from '@electric-sql/pglite';
import {
  authorizer,
  createVerifier,
  instrument as instrumentAuth,
  type KeySource,
  localJwks,
  remoteJwks,
} from '@oms/auth';
import { assertEveryRouteMapped, authPlugin } from '@oms/auth/fastify';
import { type BackupManager, backupManager, fileStorage, instrument as instrumentBackup } from '@oms/backup';
import { instrument as instrumentBreaker } from '@oms/breaker';
import type { HealthRegistry } from '@oms/health';
import { instrument as instrumentHealth } from '@oms/health';
import { healthPlugin } from '@oms/health/fastify';
import { instrument as instrumentLocks } from '@oms/locks';
import { instrument as instrumentOutbox, type OutboxMessage, type Relay, relay } from '@oms/outbox';
import { instrument as instrumentRatelimit, rateLimiter, tokenBucket } from '@oms/ratelimit';
import { rateLimitPlugin } from '@oms/ratelimit/fastify';
import {
  context,
  propagation,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  trace,
} from '@opentelemetry/api';
import Fastify, {
  type FastifyError,
  type FastifyInstance,
  type FastifyRequest,
  LogController,
} from 'fastify';
import type { Kysely } from 'kysely';
import pino, { type DestinationStream, type Logger } from 'pino';
import { AuditLog } from './audit.js';
import { type Backends, createBackends, fenceOf } from './backends.js';
import type { Config } from './config.js';
import { migrateToLatest } from './db/migrations.js';
import type { Database } from './db/schema.js';
import { ensureDevKeys } from './dev-keys.js';
import { createHealth, VERSION } from './health.js';
import { Maintenance } from './maintenance.js';
import { applyNotification, type Delivery, inProcessDelivery, redisDelivery } from './notifications.js';
import { OrderService } from './orders/service.js';
import { PaymentGateway } from './payment-gateway.js';
import { access, routes } from './policy.js';
import { Problem, problemType, sendProblem } from './problems.js';
import { adminRoutes } from './routes/admin.js';
import { orderRoutes } from './routes/orders.js';
import { startTelemetry, type Telemetry } from './telemetry.js';

/** The running reference service. */
export interface ReferenceApp {
  fastify: FastifyInstance;
  /** Listens on HOST:PORT; resolves to the base URL. */
  listen(): Promise<string>;
  /** Stops everything (idempotent): the server, the relay and consumer, the schedule, the pools, the SDK. */
  close(): Promise<void>;
  backends: { db: 'pglite' | 'postgres'; cache: 'memory' | 'redis' };
  /** The health registry behind the probes (gracefulShutdown flips its readiness). */
  health: HealthRegistry;
  log: Logger;
  /** For tests and the tour: the parts behind the HTTP API. */
  internals: {
    db: Kysely<Database>;
    audit: AuditLog;
    payments: PaymentGateway;
    relay: Relay;
    backups: BackupManager;
    applyNotification(m: OutboxMessage): Promise<'processed' | 'duplicate'>;
    /** `METHOD /pattern` of every route Fastify declared (HEAD ones included). */
    declaredRoutes: readonly string[];
  };
}

declare module 'fastify' {
  interface FastifyRequest {
    otelSpan?: Span;
  }
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** Builds the app: backends, migrations, every package wired through its Fastify adapter, and the routes. */
export async function buildApp(
  config: Config,
  opts: {
    signal?: AbortSignal /** where the JSON log lines go (default stdout) */;
    logDestination?: DestinationStream;
    /** The embedded database, already opening (`openPglite(config.dataDir)`); embedded mode only. */
    pglite?: Promise<PGlite>;
  } = {},
): Promise<ReferenceApp> {
  opts.signal?.throwIfAborted();
  const log = pino(
    {
      level: config.logLevel,
      base: { service: 'oms-reference', instance: config.instanceId },
      // every line logged inside a request (or any traced work) carries its trace
      mixin() {
        const span = trace.getSpan(context.active());
        if (!span) return {};
        const c = span.spanContext();
        return { trace_id: c.traceId, span_id: c.spanId };
      },
    },
    opts.logDestination,
  );
  const telemetry = await startTelemetry(config, VERSION);
  let backends: Backends;
  try {
    backends = await createBackends(config, log, config.databaseUrl ? undefined : opts.pglite);
  } catch (e) {
    await telemetry.shutdown();
    throw e;
  }
  try {
    opts.signal?.throwIfAborted();
    return await compose(config, log, telemetry, backends);
  } catch (e) {
    await backends.close();
    await telemetry.shutdown();
    throw e;
  }
}

async function compose(
  config: Config,
  log: Logger,
  telemetry: Telemetry,
  backends: Backends,
): Promise<ReferenceApp> {
  const db = backends.kysely;
  const migrated = await migrateToLatest(db as Kysely<unknown>);
  const detach: (() => void)[] = [];
  const meter = (pkg: string) => ({ meter: telemetry.meter(pkg), tracer: telemetry.tracer(pkg) });

  // ---- auth: local dev JWKS (created on first run) or JWKS_URL
  const keys: KeySource = config.jwksUrl
    ? remoteJwks(config.jwksUrl)
    : localJwks((await ensureDevKeys(config.dataDir)).jwks as never);
  const verifier = createVerifier({
    issuer: config.jwtIssuer,
    audience: config.jwtAudience,
    algorithms: ['ES256', 'RS256', 'EdDSA'],
    keys,
    cache: { maxEntries: 10_000, maxTtlMs: 300_000 },
  });
  detach.push(instrumentAuth(verifier, meter('@oms/auth')));
  const auth = authorizer({ verifier, routes, rbac: access });
  const audit = new AuditLog(db, log);
  auth.on('decision', (d) => {
    if (d.status === 200 && d.reason === 'public route') return; // probes and /metrics: no decision to keep
    audit.record({
      kind: 'route',
      method: d.method,
      route: d.route,
      status: d.status,
      allowed: d.status === 200,
      reason: d.reason,
      code: d.code,
      subject: d.subject,
      tokenDigest: d.tokenDigest,
    });
  });

  // ---- locks, maintenance, breaker, orders
  detach.push(instrumentLocks(backends.locks, meter('@oms/locks')));
  const maintenance = new Maintenance({ locks: backends.locks, db, log, instanceId: config.instanceId });
  const payments = new PaymentGateway({
    baseUrl: config.paymentsUrl,
    timeoutMs: config.paymentsTimeoutMs,
    openMs: config.breakerOpenMs,
    failures: config.breakerFailures,
    store: backends.breakerStore,
  });
  detach.push(instrumentBreaker(payments.policy, meter('@oms/breaker')));
  const orders = new OrderService({
    db,
    locks: backends.locks,
    maintenance,
    payments,
    fence: (t) => fenceOf(backends, t),
    log,
    // embedded PGlite has this process as its one writer, so every change to an order passes the service
    ...(backends.pglite ? { readCache: 10_000 } : {}),
    ...(backends.pool ? { pool: backends.pool } : {}),
  });

  // ---- outbox: relay on LISTEN (pglite or pg), delivered in process or through a Redis stream
  const delivery: Delivery = backends.redis
    ? redisDelivery({
        db,
        redis: backends.redis,
        consumerRedis: backends.duplicateRedis(),
        stream: `${config.redisPrefix}orders`,
        consumerName: config.instanceId,
        onError: (e) => log.warn({ err: String(e) }, 'notifications consumer error (it retries)'),
      })
    : inProcessDelivery(db);
  const outboxRelay = relay({ db, publisher: delivery.publisher, listen: backends.listen, pollMs: 1_000 });
  outboxRelay.on('error', (e) =>
    log.warn({ err: String((e as { error?: unknown }).error ?? e) }, 'outbox relay error'),
  );
  detach.push(instrumentOutbox(outboxRelay, meter('@oms/outbox')));

  // ---- backups
  const backups = backupManager({
    source: backends.backupSource,
    storage: fileStorage(join(config.dataDir, 'backups')),
    rpoMs: config.rpoMs,
    lock: backends.locks,
    retention: { keepLast: 10, daily: 7 },
  });
  detach.push(instrumentBackup(backups, meter('@oms/backup')));

  // ---- health
  const health = createHealth({
    backends,
    relay: outboxRelay,
    payments,
    backups,
    instanceId: config.instanceId,
  });
  detach.push(instrumentHealth(health, meter('@oms/health')));

  // ---- rate limits: global, per principal, per IP, per route+principal, in one limitAll
  // A Redis call slower than 1 s is decided in process memory at a fraction of the limit ('insurance'), except
  // for the global limit: it protects the whole service, so it is never exceeded and denies instead ('closed').
  const perMin = (name: string, n: number, onStoreError: 'insurance' | 'closed' = 'insurance') =>
    rateLimiter({
      name,
      algorithm: tokenBucket({ capacity: n, refillPerSec: n / 60 }),
      ...(backends.rateLimitStore ? { store: backends.rateLimitStore } : {}),
      onStoreError,
      timeoutMs: 1_000,
    });
  const limiters = {
    global: perMin('global', config.rate.globalPerMin, 'closed'),
    principal: perMin('principal', config.rate.principalPerMin),
    ip: perMin('ip', config.rate.ipPerMin),
    route: perMin('route', config.rate.routePerMin),
  };
  for (const l of Object.values(limiters)) detach.push(instrumentRatelimit(l, meter('@oms/ratelimit')));

  // ---- fastify
  const app = Fastify({
    loggerInstance: log,
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && REQUEST_ID.test(given) ? given : crypto.randomUUID();
    },
    ajv: { customOptions: { removeAdditional: false, coerceTypes: 'array', allErrors: false } },
    bodyLimit: 64 * 1024,
    // logged by the hooks below instead, inside the request's span, so these lines carry its trace_id too
    logController: new LogController({ disableRequestLogging: true }),
    forceCloseConnections: 'idle',
  }) as unknown as FastifyInstance;

  const declaredRoutes: string[] = [];
  app.addHook('onRoute', (r) => {
    for (const m of [r.method].flat()) declaredRoutes.push(`${m} ${r.url}`);
  });

  const tracer = telemetry.tracer('@oms/reference');
  // First hook: the request's server span (continuing an incoming traceparent), the request id, and both
  // echoed on the response; everything after runs inside the span's context.
  app.addHook('onRequest', (req, reply, done) => {
    const parent = propagation.extract(ROOT_CONTEXT, req.headers);
    const span = tracer.startSpan(
      `${req.method} ${req.routeOptions.url ?? 'unmatched'}`,
      {
        kind: SpanKind.SERVER,
        attributes: {
          'http.request.method': req.method,
          'http.route': req.routeOptions.url ?? '',
          'url.path': req.url.split('?')[0] ?? '',
        },
      },
      parent,
    );
    req.otelSpan = span;
    const sc = span.spanContext();
    reply.header('x-request-id', req.id);
    reply.header(
      'traceparent',
      `00-${sc.traceId}-${sc.spanId}-${sc.traceFlags.toString(16).padStart(2, '0')}`,
    );
    context.with(trace.setSpan(parent, span), () => {
      req.log.info({ req: { method: req.method, url: req.url, remoteAddress: req.ip } }, 'incoming request');
      done();
    });
  });
  app.addHook('onResponse', (req, reply, done) => {
    const span = req.otelSpan;
    if (span) {
      span.setAttribute('http.response.status_code', reply.statusCode);
      if (reply.statusCode >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
      context.with(trace.setSpan(context.active(), span), () =>
        req.log.info(
          { res: { statusCode: reply.statusCode }, responseTime: reply.elapsedTime },
          'request completed',
        ),
      );
      span.end();
    }
    done();
  });

  // Rate limits first, so a request auth refuses is still charged (global, IP) and still gets the headers. The
  // principal scopes key by the verified subject: the verifier's cache makes auth's own verification right
  // after this one a lookup. A request without a valid token is keyed by its address.
  const principalKey = new WeakMap<object, Promise<string>>();
  const byPrincipal = (req: FastifyRequest): Promise<string> => {
    let key = principalKey.get(req);
    if (!key) {
      key = verifier
        .verifyRequest({
          method: req.method,
          url: req.url,
          headers: req.headers,
          rawHeaders: req.raw.rawHeaders,
        })
        .then(
          (p) => `sub:${p.subject}`,
          () => `ip:${req.ip}`,
        );
      principalKey.set(req, key);
    }
    return key;
  };
  await app.register(rateLimitPlugin, {
    // the 429 body carries the app's stable type and code, like every other error
    problem: { type: problemType('RATE_LIMITED'), code: 'RATE_LIMITED' },
    scopes: [
      { limiter: limiters.global, key: () => 'all' },
      { limiter: limiters.principal, key: byPrincipal },
      { limiter: limiters.ip },
      {
        limiter: limiters.route,
        key: async (req) => `${req.method} ${req.routeOptions.url ?? '*'} ${await byPrincipal(req)}`,
      },
    ],
  });
  await app.register(authPlugin, { authorizer: auth, realm: 'oms-reference' });
  // probes stay out of the rate limits: an API flood must not turn readiness into a 429
  await app.register(healthPlugin, { registry: health, routeConfig: { rateLimit: false } });

  app.setErrorHandler((err: FastifyError, req, reply) => {
    if (err instanceof Problem) return sendProblem(reply, err);
    if (err.validation) {
      const errors = err.validation.map((v) => ({
        in: err.validationContext,
        path: v.instancePath,
        message: v.message,
      }));
      return sendProblem(
        reply,
        new Problem('VALIDATION', `${err.validationContext ?? 'request'} ${err.message}`, { errors }),
      );
    }
    if (err.statusCode === 413) return sendProblem(reply, new Problem('PAYLOAD_TOO_LARGE'));
    if (err.statusCode === 415) return sendProblem(reply, new Problem('UNSUPPORTED_MEDIA_TYPE'));
    if (err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500) {
      return sendProblem(reply, new Problem('VALIDATION', err.message));
    }
    req.log.error({ err }, 'unhandled error');
    return sendProblem(reply, new Problem('INTERNAL', 'an internal error happened; see the logs'));
  });
  app.setNotFoundHandler((req, reply) =>
    sendProblem(reply, new Problem('NOT_FOUND', `no route ${req.method} ${req.url}`)),
  );

  app.get('/metrics', { config: { rateLimit: false } }, async (_req, reply) =>
    reply.type('text/plain; version=0.0.4; charset=utf-8').send(await telemetry.scrape()),
  );
  orderRoutes(app, { orders, audit });
  adminRoutes(app, { db, audit, maintenance, backups, scratchUrl: config.backupScratchUrl, payments });

  await app.ready();
  assertEveryRouteMapped(app, routes); // a route without a rule fails the start, not a request

  // ---- background work, started once everything is wired
  delivery.start();
  outboxRelay.start();
  const schedule =
    config.backupEveryMs > 0
      ? backups.schedule({
          everyMs: config.backupEveryMs,
          verify: backends.pglite
            ? {}
            : config.backupScratchUrl
              ? { scratchUrl: config.backupScratchUrl }
              : {},
        })
      : undefined;

  // Shutdown order (after the server drained): no new background work, the relay drains, the consumer stops,
  // the audit queue is written, then clients and pools close, then the SDK flushes.
  app.addHook('onClose', async () => {
    await schedule?.close().catch(() => {});
    await outboxRelay.stop({ drain: true, timeoutMs: 5_000 }).catch(() => {});
    await delivery.stop().catch(() => {});
    await maintenance.close();
    await audit.close();
    await payments.close();
    await backups.close().catch(() => {});
    await health.close();
    for (const d of detach) d();
    await verifier.close().catch(() => {});
    await backends.close();
    await telemetry.shutdown();
  });

  log.info(
    {
      backends: backends.describe(),
      migrations: migrated,
      tracesExported: telemetry.exportsTraces,
      backupEveryMs: config.backupEveryMs,
    },
    `backends: db=${backends.db} cache=${backends.cache} locks=${backends.locksKind}`,
  );

  let closing: Promise<void> | undefined;
  return {
    fastify: app,
    backends: { db: backends.db, cache: backends.cache },
    health,
    log,
    internals: {
      db,
      audit,
      payments,
      relay: outboxRelay,
      backups,
      applyNotification: (m) => applyNotification(db, m),
      declaredRoutes,
    },
    async listen() {
      const url = await app.listen({ port: config.port, host: config.host });
      log.info({ url }, 'listening');
      return url;
    },
    close() {
      closing ??= app.close().then(() => {});
      return closing;
    },
  };
}
