import { eventLoopDelay, memory } from './checks.js';
import { OmsHealthError } from './errors.js';
import { Emitter } from './internal/emitter.js';
import { scrubber } from './outcome.js';
import { checkRegistration, KINDS, newEntry, parseRegistryOptions } from './registration.js';
import { assemble, type ReportedCheck } from './render.js';
import { CheckRunner, type Entry } from './runner.js';
import type {
  CheckRegistration,
  CheckSnapshot,
  Clock,
  HealthEvents,
  HealthHttpResponse,
  HealthRegistry,
  HealthRegistryOptions,
  HealthReport,
  ReportKind,
} from './types.js';
import { invalid } from './validate.js';

/**
 * Creates a health registry: checks with enforced timeouts, single-flight runs, optional background polling
 * with staleness, history and `application/health+json` reports for liveness, readiness and startup probes.
 *
 * By default it registers two process-local liveness checks, `eventloop:delay` and `memory:utilization`
 * (pass `processChecks: false` to opt out). Liveness never looks at dependencies: a database outage must
 * not make Kubernetes restart every replica at once.
 *
 * @example
 * import pg from 'pg';
 * import { healthRegistry, checks } from '@oms/health';
 * const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL });
 * const health = healthRegistry({ service: 'orders', version: '1.4.0', releaseId: process.env.GIT_SHA });
 * health.register({
 *   name: 'postgres:responseTime',
 *   check: checks.postgres(pool),
 *   kinds: ['readiness', 'startup'],
 *   critical: true,
 *   timeoutMs: 1000,
 *   intervalMs: 5000,
 * });
 * const { status, httpStatus, body } = await health.report('readiness');
 */
export function healthRegistry(opts: HealthRegistryOptions): HealthRegistry {
  const { historySize, clock } = parseRegistryOptions(opts);
  const events = new Emitter<HealthEvents>();
  const st: RegistryState = {
    opts,
    clock,
    events,
    entries: new Map(),
    runner: new CheckRunner({
      clock,
      events,
      historySize,
      scrub: scrubber(opts.redact),
      recorded: () => updateStarted(st),
    }),
    closed: false,
    shutdownAt: undefined,
    started: false,
  };
  const report: HealthRegistry['report'] = (kind, ropts) => reportOf(st, kind, ropts);
  const registry: HealthRegistry = {
    service: opts.service,
    version: opts.version,
    get shuttingDown() {
      return st.shutdownAt !== undefined;
    },
    get started() {
      return st.started;
    },
    register: (reg) => register(st, reg),
    unregister(name) {
      const entry = st.entries.get(name);
      if (!entry) return false;
      st.runner.stop(entry, 'the check was unregistered during this run');
      st.entries.delete(name);
      updateStarted(st);
      return true;
    },
    report,
    async handler(kind = 'all', hopts = {}): Promise<HealthHttpResponse> {
      const r = await report(kind, hopts);
      return {
        status: r.httpStatus,
        // probes must see the live answer, never a cached one from a proxy
        headers: { 'content-type': 'application/health+json', 'cache-control': 'no-store' },
        body: JSON.stringify(r.body),
      };
    },
    history(name) {
      const entry = st.entries.get(name);
      if (!entry) {
        throw new OmsHealthError('ERR_OMS_HEALTH_UNKNOWN_CHECK', `no check named ${name} is registered`);
      }
      return [...entry.ring];
    },
    checks: () => [...st.entries.values()].map((e) => snapshot(e, st.runner.staleness(e))),
    on: (event, fn) => events.on(event, fn),
    beginShutdown() {
      if (st.shutdownAt !== undefined) return;
      st.shutdownAt = clock.now();
      events.emit('shutdown', { time: st.shutdownAt });
    },
    async close() {
      if (st.closed) return;
      st.closed = true;
      st.runner.close(st.entries.values());
      events.clear();
    },
    [Symbol.asyncDispose]() {
      return registry.close();
    },
  };
  if (opts.processChecks !== false) registerProcessChecks(registry);
  updateStarted(st);
  return registry;
}

/** Everything a registry knows; the facade above only delegates to these functions and the runner. */
interface RegistryState {
  readonly opts: HealthRegistryOptions;
  readonly clock: Clock;
  readonly events: Emitter<HealthEvents>;
  readonly entries: Map<string, Entry>;
  readonly runner: CheckRunner;
  closed: boolean;
  shutdownAt: number | undefined;
  /** Every startup check has passed once (latched until a new startup check is registered). */
  started: boolean;
}

function updateStarted(st: RegistryState): void {
  if (st.started) return;
  // every startup check, critical or not: `pass` must mean all of them got there (until then a
  // non-critical one only makes the startup report `warn`, which is still HTTP 200)
  for (const e of st.entries.values()) {
    if (e.kinds.includes('startup') && !e.passedOnce) return;
  }
  st.started = true;
}

function register(st: RegistryState, reg: CheckRegistration): void {
  if (st.closed)
    throw new OmsHealthError('ERR_OMS_HEALTH_CLOSED', 'register() after close(): the registry is closed');
  checkRegistration(reg, (name) => {
    if (st.entries.has(name)) {
      throw new OmsHealthError(
        'ERR_OMS_HEALTH_DUPLICATE_CHECK',
        `a check named ${name} is already registered; names must be unique`,
      );
    }
  });
  const entry = newEntry(reg, st.clock.now());
  st.entries.set(reg.name, entry);
  if (entry.kinds.includes('startup')) st.started = false;
  st.runner.startPolling(entry);
}

async function reportOf(
  st: RegistryState,
  kind: ReportKind = 'all',
  ropts: { signal?: AbortSignal | undefined } = {},
): Promise<HealthReport> {
  if (st.closed)
    throw new OmsHealthError('ERR_OMS_HEALTH_CLOSED', 'report() after close(): the registry is closed');
  if (kind !== 'all' && !KINDS.includes(kind)) {
    invalid(`kind must be one of ${[...KINDS, 'all'].join(', ')} (got ${JSON.stringify(kind)})`);
  }
  const signal = ropts.signal;
  if (signal?.aborted) throw aborted(signal);
  const selected = [...st.entries.values()].filter((e) => kind === 'all' || e.kinds.includes(kind));
  const latched = kind === 'startup' && st.started;
  const work = Promise.all(
    selected.map(async (entry): Promise<ReportedCheck> => {
      // Once draining, readiness is decided; running dependency checks would only add load.
      const cachedOnly = latched || (st.shutdownAt !== undefined && entry.kinds.includes('readiness'));
      return {
        check: entry,
        result: cachedOnly ? (entry.last ?? undefined) : await st.runner.current(entry),
      };
    }),
  );
  const checks = signal ? await raceAbort(work, signal) : await work;
  const { service, version, releaseId, description } = st.opts;
  return assemble(kind, checks, {
    service,
    version,
    releaseId,
    description,
    started: st.started,
    shutdownAt: st.shutdownAt,
    now: st.clock.now(),
  });
}

const snapshot = (e: Entry, last: Entry['last']): CheckSnapshot => ({
  name: e.name,
  kinds: e.kinds,
  critical: e.critical,
  status: last?.status ?? 'unknown',
  ...(last ? { last } : {}),
  running: e.running,
});

/** The two process-local liveness checks every registry has unless `processChecks: false`. */
function registerProcessChecks(registry: HealthRegistry): void {
  registry.register({
    name: 'eventloop:delay',
    check: eventLoopDelay(),
    kinds: ['liveness'],
    critical: true,
    timeoutMs: 1000,
    componentType: 'system',
  });
  registry.register({
    name: 'memory:utilization',
    check: memory(),
    kinds: ['liveness'],
    critical: true,
    timeoutMs: 1000,
    componentType: 'system',
  });
}

function aborted(signal: AbortSignal): OmsHealthError {
  return new OmsHealthError('ERR_OMS_HEALTH_ABORTED', 'report() was aborted by its signal', false, {
    cause: signal.reason,
  });
}

function raceAbort<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(aborted(signal));
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}
