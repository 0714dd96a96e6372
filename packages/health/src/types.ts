import type { Clock } from './internal/clock.js';

export type { Clock };

/**
 * A check outcome, as health+json spells it.
 *
 * @example
 * declare const registry: HealthRegistry;
 * declare const log: Record<'info' | 'warn', (obj: object | string, msg?: string) => void>;
 * const status: HealthStatus = (await registry.report('readiness')).status;
 * if (status === 'warn') log.warn('degraded but serving');
 */
export type HealthStatus = 'pass' | 'warn' | 'fail';

/**
 * Which probe a check feeds.
 *
 * @example
 * declare const registry: HealthRegistry;
 * declare const check: HealthCheck;
 * const kinds: CheckKind[] = ['readiness', 'startup'];
 * registry.register({ name: 'postgres:responseTime', check, kinds, critical: true, timeoutMs: 1000 });
 */
export type CheckKind = 'liveness' | 'readiness' | 'startup';

/**
 * Any JSON value (what `observedValue` may hold).
 *
 * @example
 * const observedValue: JsonValue = { p50: 1.2, p99: 8.4 };
 */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/**
 * What a check function resolves to. Everything is optional; resolving without `status` means `pass`.
 *
 * @example
 * declare function replicationLagSeconds(): Promise<number>;
 * const check: HealthCheck = async () => {
 *   const lag = await replicationLagSeconds();
 *   const outcome: CheckOutcome = { status: lag > 30 ? 'warn' : 'pass', observedValue: lag, observedUnit: 's' };
 *   return outcome;
 * };
 */
export interface CheckOutcome {
  status?: HealthStatus | undefined;
  /** The measured value, e.g. a latency. Defaults to the run's duration in ms. */
  observedValue?: JsonValue | undefined;
  /** Unit of `observedValue` (`ms`, `bytes`, `percent`, …). Defaults to `ms` with the default value. */
  observedUnit?: string | undefined;
  /** Why it warned or failed. Redacted before it is stored or served. */
  output?: string | undefined;
  /** `component`, `datastore`, `system` or a URI. Overrides the registration's `componentType`. */
  componentType?: string | undefined;
  componentId?: string | undefined;
  /** URI templates of endpoints this component's trouble affects. */
  affectedEndpoints?: string[] | undefined;
  /** Extra keys for the health+json entry (§4.10 of the draft); standard keys are never overwritten. */
  details?: Record<string, JsonValue> | undefined;
}

/**
 * What a check receives: its signal aborts when the check times out or the registry closes.
 *
 * @example
 * declare const registry: HealthRegistry;
 * registry.register({
 *   name: 'search:responseTime', kinds: ['readiness'], critical: false, timeoutMs: 500,
 *   check: async ({ signal }: CheckContext) => {
 *     const res = await fetch('http://search.internal/ping', { signal });
 *     return { status: res.ok ? 'pass' : 'fail' };
 *   },
 * });
 */
export interface CheckContext {
  readonly signal: AbortSignal;
}

/**
 * A check: runs once per call and resolves to a {@link CheckOutcome}. Throwing or rejecting means `fail`.
 * A check may carry `close()` (built-in checks that hold a monitor do); the registry calls it on close.
 *
 * @example
 * declare function countPendingMigrations(): Promise<number>;
 * const migrations: HealthCheck = async () => {
 *   const pending = await countPendingMigrations();
 *   return pending === 0 ? { status: 'pass' } : { status: 'fail', output: `${pending} migrations pending` };
 * };
 */
export type HealthCheck = ((ctx: CheckContext) => CheckOutcome | Promise<CheckOutcome>) & {
  close?: () => void;
  /**
   * health+json `componentType` of every result, including a timeout or a throw (the built-in checks set
   * it: `datastore` for PostgreSQL and Redis, `system` for the process checks). The registration's
   * `componentType` overrides it.
   */
  componentType?: string | undefined;
};

/**
 * Options of `register()`.
 *
 * @example
 * declare const registry: HealthRegistry;
 * declare const pool: import('pg').Pool;
 * const registration: CheckRegistration = {
 *   name: 'postgres:responseTime', check: checks.postgres(pool),
 *   kinds: ['readiness', 'startup'], critical: true, timeoutMs: 1000, intervalMs: 5000,
 * };
 * registry.register(registration);
 */
export interface CheckRegistration {
  /** `component:measurement`, e.g. `postgres:responseTime` (health+json's key style). */
  name: string;
  check: HealthCheck;
  /** Probes this check feeds. Liveness should only ever hold process-local checks. */
  kinds: readonly CheckKind[];
  /** A failing critical check fails the report; a failing non-critical one only makes it `warn`. */
  critical: boolean;
  /** Enforced: a run that takes longer yields `fail` with "timed out after N ms". */
  timeoutMs: number;
  /** Run in the background every `intervalMs`; reports then serve the cached result. */
  intervalMs?: number | undefined;
  /** A cached result older than this is reported as `fail`. Default `2 × intervalMs + timeoutMs`. */
  staleAfterMs?: number | undefined;
  /** health+json `componentType` (`component`, `datastore`, `system`). Default `component`. */
  componentType?: string | undefined;
}

/**
 * One stored check result.
 *
 * @example
 * declare const registry: HealthRegistry;
 * declare const log: Record<'info' | 'warn', (obj: object | string, msg?: string) => void>;
 * const last: CheckResult | undefined = registry.checks().find((c) => c.name === 'postgres:responseTime')?.last;
 * if (last?.timedOut) log.warn(`postgres check timed out after ${last.durationMs} ms`);
 */
export interface CheckResult {
  readonly name: string;
  readonly status: HealthStatus;
  readonly observedValue: JsonValue;
  readonly observedUnit: string;
  readonly output?: string;
  readonly componentType: string;
  readonly componentId?: string;
  readonly affectedEndpoints?: readonly string[];
  readonly details?: Readonly<Record<string, JsonValue>>;
  /** When the reading was taken (ms since the epoch, from the registry's clock). */
  readonly time: number;
  /** How long the run took, in ms. */
  readonly durationMs: number;
  readonly timedOut: boolean;
}

/**
 * One element of a `checks` array in a health+json body.
 *
 * @example
 * declare const registry: HealthRegistry;
 * const { body } = await registry.report('readiness');
 * const [pg]: HealthCheckEntry[] = body.checks['postgres:responseTime'] ?? [];
 * const latency = `${pg?.observedValue} ${pg?.observedUnit}`; // '0.41 ms'
 */
export interface HealthCheckEntry {
  componentType: string;
  componentId?: string;
  observedValue: JsonValue;
  observedUnit: string;
  status: HealthStatus;
  time: string;
  output?: string;
  affectedEndpoints?: string[];
  [extra: string]: JsonValue | undefined;
}

/**
 * An `application/health+json` body (draft-inadarei-api-health-check-06).
 *
 * @example
 * declare const registry: HealthRegistry;
 * declare const res: import('node:http').ServerResponse;
 * const body: HealthBody = (await registry.report('all')).body;
 * res.writeHead(body.status === 'fail' ? 503 : 200, { 'content-type': 'application/health+json' });
 * res.end(JSON.stringify(body));
 */
export interface HealthBody {
  status: HealthStatus;
  version: string;
  releaseId?: string;
  serviceId: string;
  description?: string;
  output?: string;
  notes?: string[];
  checks: Record<string, HealthCheckEntry[]>;
}

/**
 * What `report()` returns.
 *
 * @example
 * declare const registry: HealthRegistry;
 * declare const res: import('node:http').ServerResponse;
 * const r: HealthReport = await registry.report('readiness');
 * res.writeHead(r.httpStatus, { 'content-type': 'application/health+json' }).end(JSON.stringify(r.body));
 */
export interface HealthReport {
  status: HealthStatus;
  /** 200 for pass and warn, 503 for fail. */
  httpStatus: 200 | 503;
  body: HealthBody;
}

/**
 * Which report: one probe, or `all` checks (the `/health` endpoint).
 *
 * @example
 * declare const registry: HealthRegistry;
 * declare const req: import('node:http').IncomingMessage;
 * const kind: ReportKind = req.url === '/health' ? 'all' : 'readiness';
 * const r = await registry.report(kind);
 */
export type ReportKind = CheckKind | 'all';

/**
 * A state transition of one check, as kept in its history ring and emitted as `change`.
 *
 * @example
 * declare const registry: HealthRegistry;
 * declare const log: Record<'info' | 'warn', (obj: object | string, msg?: string) => void>;
 * registry.on('change', (t: HealthTransition) => {
 *   log.info({ check: t.name, from: t.from, to: t.to, after: t.durationMs }, 'health changed');
 * });
 */
export interface HealthTransition {
  readonly name: string;
  /** `unknown` for the first result. */
  readonly from: HealthStatus | 'unknown';
  readonly to: HealthStatus;
  /** When the transition happened (ms since the epoch). */
  readonly time: number;
  /** How long the check had been in `from`, in ms (0 for the first result). */
  readonly durationMs: number;
  /** Duration of the run that caused the transition, in ms. */
  readonly checkDurationMs: number;
  readonly output?: string;
  readonly critical: boolean;
  readonly kinds: readonly CheckKind[];
}

/**
 * Emitted after every run of a check (telemetry listens to it).
 *
 * @example
 * declare const registry: HealthRegistry;
 * declare const log: Record<'info' | 'warn', (obj: object | string, msg?: string) => void>;
 * registry.on('check', (e: CheckRunEvent) => {
 *   if (e.timedOut) log.warn({ check: e.name }, 'health check timed out');
 * });
 */
export interface CheckRunEvent {
  readonly name: string;
  readonly status: HealthStatus;
  readonly durationMs: number;
  readonly timedOut: boolean;
}

/**
 * Events of a registry.
 *
 * @example
 * declare const registry: HealthRegistry;
 * declare const log: Record<'info' | 'warn', (obj: object | string, msg?: string) => void>;
 * const off = registry.on('shutdown', (e: HealthEvents['shutdown']) => log.info({ at: e.time }, 'draining'));
 * off();
 */
export interface HealthEvents {
  change: HealthTransition;
  check: CheckRunEvent;
  shutdown: { readonly time: number };
}

/**
 * The current view of one registered check.
 *
 * @example
 * declare const registry: HealthRegistry;
 * const failing = registry.checks().filter((c: CheckSnapshot) => c.status === 'fail').map((c) => c.name);
 */
export interface CheckSnapshot {
  readonly name: string;
  readonly kinds: readonly CheckKind[];
  readonly critical: boolean;
  /** The effective status (stale results count as `fail`); `unknown` before the first result. */
  readonly status: HealthStatus | 'unknown';
  readonly last?: CheckResult;
  readonly running: boolean;
}

/**
 * Options of `healthRegistry()`.
 *
 * @example
 * const options: HealthRegistryOptions = {
 *   service: 'orders', version: '1.4.0', releaseId: process.env.GIT_SHA, historySize: 100,
 * };
 * const registry = healthRegistry(options);
 */
export interface HealthRegistryOptions {
  /** health+json `serviceId`. */
  service: string;
  /** health+json `version`: the public version of the service. */
  version: string;
  /** health+json `releaseId`: the build or deployment identifier. */
  releaseId?: string | undefined;
  /** health+json `description`. */
  description?: string | undefined;
  clock?: Clock | undefined;
  /** Transitions kept per check. Default 50. */
  historySize?: number | undefined;
  /**
   * Register the process-local liveness checks `eventloop:delay` and `memory:utilization`. Default true.
   */
  processChecks?: boolean | undefined;
  /** Extra scrubbing for outputs, run after the built-in secret redaction. */
  redact?: ((text: string) => string) | undefined;
}

/**
 * What `handler(kind)` resolves to: ready to write to any HTTP framework.
 *
 * @example
 * import { createServer } from 'node:http';
 * import { healthRegistry, type HealthHttpResponse } from '@oms/health';
 * const registry = healthRegistry({ service: 'orders', version: '1.4.0' });
 * createServer(async (_req, res) => {
 *   const r: HealthHttpResponse = await registry.handler('readiness');
 *   res.writeHead(r.status, r.headers).end(r.body);
 * }).listen(9090);
 */
export interface HealthHttpResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/**
 * A health registry: register checks, then ask for reports.
 *
 * @example
 * declare const redis: import('ioredis').Redis;
 * const registry: HealthRegistry = healthRegistry({ service: 'orders', version: '1.4.0' });
 * registry.register({ name: 'redis:responseTime', check: checks.redis(redis), kinds: ['readiness'], critical: true, timeoutMs: 500 });
 * const { httpStatus } = await registry.report('readiness');
 * await registry.close();
 */
export interface HealthRegistry {
  readonly service: string;
  readonly version: string;
  /** True once `beginShutdown()` was called: readiness fails from then on. */
  readonly shuttingDown: boolean;
  /** True once every startup check has passed (`pass` or `warn`) once; the startup report then stays `pass`. */
  readonly started: boolean;
  register(registration: CheckRegistration): void;
  /** Stops a check's polling and forgets it. */
  unregister(name: string): boolean;
  report(kind?: ReportKind, opts?: { signal?: AbortSignal | undefined }): Promise<HealthReport>;
  handler(kind?: ReportKind, opts?: { signal?: AbortSignal | undefined }): Promise<HealthHttpResponse>;
  /** The transition ring of one check, oldest first. */
  history(name: string): readonly HealthTransition[];
  checks(): readonly CheckSnapshot[];
  on<E extends keyof HealthEvents>(event: E, fn: (e: HealthEvents[E]) => void): () => void;
  /** Makes readiness fail at once (liveness is untouched). `gracefulShutdown` calls it on the first signal. */
  beginShutdown(): void;
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}
