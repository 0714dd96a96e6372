import { statfs } from 'node:fs/promises';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { getHeapStatistics } from 'node:v8';
import { redactSecrets } from './redact.js';
import type { CheckContext, CheckOutcome, HealthCheck, HealthStatus } from './types.js';
import { invalid, v } from './validate.js';

/**
 * Anything that runs SQL: a pg `Pool`/`Client`, or an adapter around kysely, postgres.js, etc.
 *
 * @example
 * // kysely: { query: (q) => sql.raw(q).execute(db) }; postgres.js:
 * declare const pgjs: { unsafe(query: string): Promise<unknown> };
 * const viaPostgresJs: SqlQueryable = { query: (q) => pgjs.unsafe(q) };
 * const check = checks.postgres(viaPostgresJs);
 */
export interface SqlQueryable {
  query(sql: string): Promise<unknown>;
}

/**
 * Anything that answers PING: an ioredis `Redis` or `Cluster`, or node-redis.
 *
 * @example
 * import { Redis } from 'ioredis';
 * import { checks, type Pingable } from '@oms/health';
 * const client: Pingable = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', { maxRetriesPerRequest: 1 });
 * const check = checks.redis(client);
 */
export interface Pingable {
  ping(): Promise<string>;
}

/**
 * Latency thresholds shared by the dependency checks, in ms.
 *
 * @example
 * declare const pool: import('pg').Pool;
 * const slowIsWarn: LatencyThresholds = { warnMs: 50, failMs: 500 };
 * const check = checks.postgres(pool, slowIsWarn);
 */
export interface LatencyThresholds {
  /** Latency above this reports `warn`. */
  warnMs?: number | undefined;
  /** Latency above this reports `fail` (the registration's `timeoutMs` still bounds the whole run). */
  failMs?: number | undefined;
}

const round = (n: number, digits = 3) => {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
};

function thresholds(name: string, t: LatencyThresholds): void {
  if (t.warnMs !== undefined) v.positiveFinite(`${name}: warnMs`, t.warnMs);
  if (t.failMs !== undefined) v.positiveFinite(`${name}: failMs`, t.failMs);
  if (t.warnMs !== undefined && t.failMs !== undefined && t.warnMs > t.failMs) {
    invalid(`${name}: warnMs (${t.warnMs}) must not exceed failMs (${t.failMs})`);
  }
}

function grade(ms: number, t: LatencyThresholds, what: string): CheckOutcome {
  const value = round(ms);
  let status: HealthStatus = 'pass';
  let output: string | undefined;
  if (t.failMs !== undefined && ms > t.failMs) {
    status = 'fail';
    output = `${what} took ${value} ms (failMs ${t.failMs})`;
  } else if (t.warnMs !== undefined && ms > t.warnMs) {
    status = 'warn';
    output = `${what} took ${value} ms (warnMs ${t.warnMs})`;
  }
  return { status, observedValue: value, observedUnit: 'ms', ...(output ? { output } : {}) };
}

// A run that throws or times out returns no outcome to carry its componentType, so the check itself carries
// it: a PostgreSQL or Redis that is down must still read as a `datastore` (health+json), not a `component`.
function ofType(componentType: string, check: HealthCheck): HealthCheck {
  check.componentType = componentType;
  return check;
}

/**
 * PostgreSQL: runs `select 1` (or `sql`) and reports its latency in ms. Takes anything with
 * `query(sql)`; for kysely pass `{ query: (q) => sql.raw(q).execute(db) }`.
 *
 * @example
 * declare const registry: HealthRegistry;
 * declare const pool: import('pg').Pool;
 * registry.register({
 *   name: 'postgres:responseTime', check: checks.postgres(pool, { warnMs: 100 }),
 *   kinds: ['readiness'], critical: true, timeoutMs: 1000, intervalMs: 5000,
 * });
 */
export function postgres(
  db: SqlQueryable,
  opts: LatencyThresholds & { sql?: string | undefined } = {},
): HealthCheck {
  if (!db || typeof db.query !== 'function') invalid('checks.postgres(db) needs an object with query(sql)');
  thresholds('checks.postgres', opts);
  const text = opts.sql ?? 'select 1';
  return ofType('datastore', async () => {
    const t0 = performance.now();
    await db.query(text);
    return { ...grade(performance.now() - t0, opts, text), componentType: 'datastore' };
  });
}

/**
 * Redis: sends PING, expects PONG, reports the round trip in ms. Give it a client with a bounded
 * `maxRetriesPerRequest` or rely on the registration's timeout: ioredis queues commands while reconnecting.
 *
 * @example
 * declare const registry: HealthRegistry;
 * declare const redis: import('ioredis').Redis;
 * registry.register({
 *   name: 'redis:responseTime', check: checks.redis(redis),
 *   kinds: ['readiness'], critical: true, timeoutMs: 500, intervalMs: 5000,
 * });
 */
export function redis(client: Pingable, opts: LatencyThresholds = {}): HealthCheck {
  if (!client || typeof client.ping !== 'function')
    invalid('checks.redis(client) needs an object with ping()');
  thresholds('checks.redis', opts);
  return ofType('datastore', async () => {
    const t0 = performance.now();
    const reply = await client.ping();
    const ms = performance.now() - t0;
    if (reply !== 'PONG') {
      return {
        status: 'fail',
        observedValue: round(ms),
        observedUnit: 'ms',
        componentType: 'datastore',
        output: `PING answered ${JSON.stringify(reply)}, expected "PONG"`,
      };
    }
    return { ...grade(ms, opts, 'PING'), componentType: 'datastore' };
  });
}

/**
 * Options of `checks.eventLoopDelay`.
 *
 * @example
 * const opts: EventLoopDelayOptions = { warnMs: 100, failMs: 500, resolutionMs: 10 };
 * const check = checks.eventLoopDelay(opts);
 */
export interface EventLoopDelayOptions {
  /** p99 delay above this warns. Default 200 ms. */
  warnMs?: number | undefined;
  /** p99 delay above this fails. Default 1000 ms. */
  failMs?: number | undefined;
  /** Sampling resolution of `monitorEventLoopDelay`. Default 20 ms. */
  resolutionMs?: number | undefined;
}

/**
 * Event-loop delay: the p99 from `monitorEventLoopDelay` since the previous run, in ms. A process whose
 * loop is blocked for seconds cannot serve anything, which is what liveness is for.
 *
 * @example
 * declare const registry: HealthRegistry;
 * registry.register({
 *   name: 'eventloop:delay', check: checks.eventLoopDelay({ warnMs: 100, failMs: 500 }),
 *   kinds: ['liveness'], critical: true, timeoutMs: 1000,
 * });
 */
export function eventLoopDelay(opts: EventLoopDelayOptions = {}): HealthCheck {
  const warnMs = opts.warnMs ?? 200;
  const failMs = opts.failMs ?? 1000;
  thresholds('checks.eventLoopDelay', { warnMs, failMs });
  const resolution = opts.resolutionMs ?? 20;
  v.positiveFinite('checks.eventLoopDelay: resolutionMs', resolution);
  let histogram: ReturnType<typeof monitorEventLoopDelay> | undefined;
  const check: HealthCheck = () => {
    if (!histogram) {
      // started lazily so an unused check costs nothing
      histogram = monitorEventLoopDelay({ resolution: Math.max(1, Math.round(resolution)) });
      histogram.enable();
    }
    const p99 = histogram.count > 0 ? histogram.percentile(99) / 1e6 : 0;
    histogram.reset();
    const out = grade(p99, { warnMs, failMs }, 'event-loop delay p99');
    return { ...out, componentType: 'system' };
  };
  check.componentType = 'system';
  check.close = () => {
    histogram?.disable();
    histogram = undefined;
  };
  return check;
}

/**
 * Options of `checks.memory`.
 *
 * @example
 * const opts: MemoryOptions = { warnRatio: 0.85, failRatio: 0.95, maxRssBytes: 1.5 * 2 ** 30 };
 * const check = checks.memory(opts);
 */
export interface MemoryOptions {
  /** Heap used / heap limit above this warns. Default 0.9. */
  warnRatio?: number | undefined;
  /** Heap used / heap limit above this fails. Default 0.98. */
  failRatio?: number | undefined;
  /** RSS above this many bytes fails (off by default: container limits differ). */
  maxRssBytes?: number | undefined;
}

/**
 * Memory: V8 heap used against the heap limit (observedValue in percent), with heap and RSS bytes as
 * extra keys.
 *
 * @example
 * declare const registry: HealthRegistry;
 * registry.register({
 *   name: 'memory:utilization', check: checks.memory({ maxRssBytes: 512 * 2 ** 20 }),
 *   kinds: ['liveness'], critical: true, timeoutMs: 1000,
 * });
 */
export function memory(opts: MemoryOptions = {}): HealthCheck {
  const warnRatio = opts.warnRatio ?? 0.9;
  const failRatio = opts.failRatio ?? 0.98;
  v.fraction('checks.memory: warnRatio', warnRatio);
  v.fraction('checks.memory: failRatio', failRatio);
  if (warnRatio > failRatio)
    invalid(`checks.memory: warnRatio (${warnRatio}) must not exceed failRatio (${failRatio})`);
  if (opts.maxRssBytes !== undefined) v.positiveFinite('checks.memory: maxRssBytes', opts.maxRssBytes);
  return ofType('system', () => {
    const heap = getHeapStatistics();
    const rss = process.memoryUsage.rss();
    const used = heap.used_heap_size;
    const limit = heap.heap_size_limit;
    const r = limit > 0 ? used / limit : 0;
    let status: HealthStatus = 'pass';
    let output: string | undefined;
    if (r > failRatio) {
      status = 'fail';
      output = `heap used ${used} of ${limit} bytes (${round(r * 100, 1)}% > failRatio ${failRatio})`;
    } else if (opts.maxRssBytes !== undefined && rss > opts.maxRssBytes) {
      status = 'fail';
      output = `rss ${rss} bytes exceeds maxRssBytes ${opts.maxRssBytes}`;
    } else if (r > warnRatio) {
      status = 'warn';
      output = `heap used ${used} of ${limit} bytes (${round(r * 100, 1)}% > warnRatio ${warnRatio})`;
    }
    return {
      status,
      observedValue: round(r * 100, 2),
      observedUnit: 'percent',
      componentType: 'system',
      details: { heapUsedBytes: used, heapLimitBytes: limit, rssBytes: rss },
      ...(output ? { output } : {}),
    };
  });
}

/**
 * Options of `checks.disk`.
 *
 * @example
 * const opts: DiskOptions = { path: '/var/lib/app', minFreeBytes: 1e9, warnFreeBytes: 5e9 };
 * const check = checks.disk(opts);
 */
export interface DiskOptions {
  /** A path on the filesystem to watch. Default the current working directory. */
  path?: string | undefined;
  /** Fail below this many free bytes. */
  minFreeBytes?: number | undefined;
  /** Fail below this free ratio (0..1). Default 0.05 when no byte threshold is given. */
  minFreeRatio?: number | undefined;
  /** Warn below this free ratio (0..1). Default 0.1 when no byte threshold is given. */
  warnFreeRatio?: number | undefined;
  /** Warn below this many free bytes. */
  warnFreeBytes?: number | undefined;
}

/**
 * Disk: free bytes available to this process on `path` (from `fs.statfs`), against byte or ratio
 * thresholds. observedValue is free bytes; `freeRatio` and `totalBytes` ride along.
 *
 * @example
 * declare const registry: HealthRegistry;
 * registry.register({
 *   name: 'disk:free', check: checks.disk({ path: '/var/lib/app', minFreeBytes: 1e9 }),
 *   kinds: ['readiness'], critical: false, timeoutMs: 1000, intervalMs: 30_000,
 * });
 */
export function disk(opts: DiskOptions = {}): HealthCheck {
  const path = opts.path ?? process.cwd();
  if (typeof path !== 'string' || path === '') invalid('checks.disk: path must be a non-empty string');
  const byBytes = opts.minFreeBytes !== undefined || opts.warnFreeBytes !== undefined;
  const minFreeRatio = opts.minFreeRatio ?? (byBytes ? undefined : 0.05);
  const warnFreeRatio = opts.warnFreeRatio ?? (byBytes ? undefined : 0.1);
  if (minFreeRatio !== undefined) v.fraction('checks.disk: minFreeRatio', minFreeRatio);
  if (warnFreeRatio !== undefined) v.fraction('checks.disk: warnFreeRatio', warnFreeRatio);
  if (opts.minFreeBytes !== undefined) v.nonNegativeFinite('checks.disk: minFreeBytes', opts.minFreeBytes);
  if (opts.warnFreeBytes !== undefined) v.nonNegativeFinite('checks.disk: warnFreeBytes', opts.warnFreeBytes);
  return ofType('system', async () => {
    const s = await statfs(path);
    const free = Number(s.bavail) * Number(s.bsize);
    const total = Number(s.blocks) * Number(s.bsize);
    const r = total > 0 ? free / total : 0;
    let status: HealthStatus = 'pass';
    let output: string | undefined;
    if (opts.minFreeBytes !== undefined && free < opts.minFreeBytes) {
      status = 'fail';
      output = `${free} bytes free on ${path} (minFreeBytes ${opts.minFreeBytes})`;
    } else if (minFreeRatio !== undefined && r < minFreeRatio) {
      status = 'fail';
      output = `${round(r * 100, 2)}% free on ${path} (minFreeRatio ${minFreeRatio})`;
    } else if (opts.warnFreeBytes !== undefined && free < opts.warnFreeBytes) {
      status = 'warn';
      output = `${free} bytes free on ${path} (warnFreeBytes ${opts.warnFreeBytes})`;
    } else if (warnFreeRatio !== undefined && r < warnFreeRatio) {
      status = 'warn';
      output = `${round(r * 100, 2)}% free on ${path} (warnFreeRatio ${warnFreeRatio})`;
    }
    return {
      status,
      observedValue: free,
      observedUnit: 'bytes',
      componentType: 'system',
      details: { totalBytes: total, freeRatio: round(r, 4) },
      ...(output ? { output } : {}),
    };
  });
}

/**
 * Options of `checks.http`.
 *
 * @example
 * const opts: HttpCheckOptions = { url: 'http://payments.internal/livez', expectedStatus: [200, 204], timeoutMs: 800 };
 * const check = checks.http(opts);
 */
export interface HttpCheckOptions extends LatencyThresholds {
  url: string | URL;
  method?: string | undefined;
  headers?: Record<string, string> | undefined;
  /** A status, a list, or a predicate. Default: any 2xx. */
  expectedStatus?: (number | readonly number[] | ((status: number) => boolean)) | undefined;
  /** Abort the request after this long. Default: only the registration's timeout applies. */
  timeoutMs?: number | undefined;
}

/**
 * HTTP: requests `url` and passes when the status is the expected one within the timeout; reports the
 * latency in ms. Credentials in the URL never reach the output.
 *
 * @example
 * declare const registry: HealthRegistry;
 * registry.register({
 *   name: 'payments:responseTime',
 *   check: checks.http({ url: 'http://payments.internal/livez', expectedStatus: 200, timeoutMs: 800 }),
 *   kinds: ['readiness'], critical: false, timeoutMs: 1000, intervalMs: 10_000,
 * });
 */
export function http(opts: HttpCheckOptions): HealthCheck {
  if (!opts || (typeof opts.url !== 'string' && !(opts.url instanceof URL))) {
    invalid('checks.http({ url }) needs a url');
  }
  let url: URL;
  try {
    url = new URL(String(opts.url));
  } catch {
    return invalid('checks.http: url is not a valid absolute URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    invalid(`checks.http: url must be http(s) (got ${url.protocol})`);
  }
  thresholds('checks.http', opts);
  if (opts.timeoutMs !== undefined) v.positiveFinite('checks.http: timeoutMs', opts.timeoutMs);
  const expected = opts.expectedStatus;
  if (typeof expected === 'number' && (!Number.isInteger(expected) || expected < 100 || expected > 599)) {
    invalid(`checks.http: expectedStatus must be an HTTP status code (got ${expected})`);
  }
  const matches = (s: number) =>
    expected === undefined
      ? s >= 200 && s < 300
      : typeof expected === 'number'
        ? s === expected
        : typeof expected === 'function'
          ? expected(s)
          : expected.includes(s);
  const shown = `${url.origin}${url.pathname}`;
  // fetch refuses URLs with credentials (and would echo them in its error): send them as a header instead
  const headers: Record<string, string> = { ...opts.headers };
  if (url.username || url.password) {
    const user = decodeURIComponent(url.username);
    const pass = decodeURIComponent(url.password);
    headers.authorization ??= `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;
    url.username = '';
    url.password = '';
  }
  return async ({ signal }: CheckContext) => {
    const signals = [signal];
    if (opts.timeoutMs !== undefined) signals.push(AbortSignal.timeout(opts.timeoutMs));
    const t0 = performance.now();
    let res: Response;
    try {
      res = await fetch(url, {
        method: opts.method ?? 'GET',
        headers,
        signal: AbortSignal.any(signals),
        redirect: 'manual',
      });
    } catch (e) {
      const ms = performance.now() - t0;
      const why =
        (e as Error)?.name === 'TimeoutError'
          ? `no answer within ${opts.timeoutMs} ms`
          : ((e as Error & { cause?: Error })?.cause?.message ?? (e as Error)?.message);
      return {
        status: 'fail',
        observedValue: round(ms),
        observedUnit: 'ms',
        output: redactSecrets(`${opts.method ?? 'GET'} ${shown}: ${why}`),
      };
    }
    // free the connection: only the status matters
    await res.body?.cancel().catch(() => {});
    const ms = performance.now() - t0;
    if (!matches(res.status)) {
      return {
        status: 'fail',
        observedValue: round(ms),
        observedUnit: 'ms',
        output: `${opts.method ?? 'GET'} ${shown} answered ${res.status}, expected ${
          typeof expected === 'function' ? 'a status the predicate accepts' : (expected ?? '2xx')
        }`,
      };
    }
    return grade(ms, opts, `${opts.method ?? 'GET'} ${shown}`);
  };
}

/**
 * The built-in checks. Each reports `observedValue` and `observedUnit`.
 *
 * @example
 * import { Redis } from 'ioredis';
 * import pg from 'pg';
 * import { checks } from '@oms/health';
 * const postgresCheck = checks.postgres(new pg.Pool({ connectionString: process.env.DATABASE_URL }));
 * const redisCheck = checks.redis(new Redis({ maxRetriesPerRequest: 1 }));
 */
export const checks = Object.freeze({ postgres, redis, eventLoopDelay, memory, disk, http });
