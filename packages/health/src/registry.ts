import { eventLoopDelay, memory } from './checks.js';
import { OmsHealthError } from './errors.js';
import { backgroundTimeout, systemClock } from './internal/clock.js';
import { Emitter } from './internal/emitter.js';
import { redactSecrets } from './redact.js';
import type {
  CheckKind,
  CheckOutcome,
  CheckResult,
  CheckSnapshot,
  Clock,
  HealthBody,
  HealthCheck,
  HealthCheckEntry,
  HealthEvents,
  HealthHttpResponse,
  HealthRegistry,
  HealthRegistryOptions,
  HealthReport,
  HealthStatus,
  HealthTransition,
  JsonValue,
  ReportKind,
} from './types.js';
import { invalid, v } from './validate.js';

const KINDS: readonly CheckKind[] = ['liveness', 'readiness', 'startup'];
const STATUSES: readonly HealthStatus[] = ['pass', 'warn', 'fail'];
// health+json keys are `{componentName}:{measurementName}`, neither part containing a colon
const NAME = /^[^:\s]+:[^:\s]+$/;
const STANDARD_KEYS = new Set([
  'componentId',
  'componentType',
  'observedValue',
  'observedUnit',
  'status',
  'affectedEndpoints',
  'time',
  'output',
  'links',
]);
const MAX_OUTPUT = 1024;
const SHUTDOWN_KEY = 'process:shutdown';

interface Entry {
  readonly name: string;
  readonly check: HealthCheck;
  readonly kinds: readonly CheckKind[];
  readonly critical: boolean;
  readonly timeoutMs: number;
  readonly intervalMs: number | undefined;
  readonly staleAfterMs: number | undefined;
  readonly componentType: string;
  last: CheckResult | undefined;
  lastChangeAt: number;
  /** The shared result of the current run: resolves on completion or on timeout. */
  inflight: Promise<CheckResult> | undefined;
  /** The user's function has not settled yet (it may outlive its timeout). */
  running: boolean;
  runStartedAt: number;
  passedOnce: boolean;
  controller: AbortController | undefined;
  /** Settles the pending run (with a timeout or close result); clears its timer. */
  settle: ((outcome: CheckOutcome, timedOut: boolean) => void) | undefined;
  /** Refs the pending run's timeout timer: a report now awaits a run the poller started in the background. */
  hold: (() => void) | undefined;
  pollTimer: unknown;
  removed: boolean;
  readonly ring: HealthTransition[];
}

const describe = (e: unknown): string => {
  if (e instanceof Error) return e.message || e.name;
  if (typeof e === 'string') return e;
  try {
    return JSON.stringify(e) ?? String(e);
  } catch {
    return String(e);
  }
};

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
  if (!opts || typeof opts !== 'object') invalid('healthRegistry(options) needs { service, version }');
  if (typeof opts.service !== 'string' || opts.service.trim() === '') {
    invalid(`service must be a non-empty string (got ${JSON.stringify(opts.service)})`);
  }
  if (typeof opts.version !== 'string' || opts.version.trim() === '') {
    invalid(`version must be a non-empty string (got ${JSON.stringify(opts.version)})`);
  }
  if (opts.releaseId !== undefined && typeof opts.releaseId !== 'string')
    invalid('releaseId must be a string');
  if (opts.description !== undefined && typeof opts.description !== 'string') {
    invalid('description must be a string');
  }
  const historySize = v.integer('historySize', opts.historySize ?? 50, { min: 1 });
  const clock: Clock = v.clock(opts.clock, systemClock);
  const extraRedact = opts.redact;
  const events = new Emitter<HealthEvents>();
  const entries = new Map<string, Entry>();
  let closed = false;
  let shutdownAt: number | undefined;
  let started = false;

  const scrub = (text: string | undefined): string | undefined => {
    if (text === undefined) return undefined;
    let out = redactSecrets(text);
    if (extraRedact) {
      try {
        out = extraRedact(out);
      } catch {
        // keep the built-in redaction rather than leak or throw
      }
    }
    return out.length > MAX_OUTPUT ? `${out.slice(0, MAX_OUTPUT)}…` : out;
  };

  const normalize = (v: unknown): CheckOutcome => {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) {
      return {
        status: 'fail',
        output: `check returned ${v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v}; expected an object such as { status: 'pass' }`,
      };
    }
    const o = v as CheckOutcome;
    if (o.status !== undefined && !STATUSES.includes(o.status)) {
      return {
        status: 'fail',
        output: `check returned status ${JSON.stringify(o.status)}; expected 'pass', 'warn' or 'fail'`,
      };
    }
    const wrong = malformed(o);
    return wrong ? { status: 'fail', output: `check returned ${wrong}` } : o;
  };

  const record = (entry: Entry, outcome: CheckOutcome, startedAt: number, timedOut: boolean): CheckResult => {
    const now = clock.now();
    const durationMs = Math.max(0, now - startedAt);
    const status = outcome.status ?? 'pass';
    const output = scrub(outcome.output);
    const result: CheckResult = {
      name: entry.name,
      status,
      observedValue: outcome.observedValue !== undefined ? outcome.observedValue : durationMs,
      observedUnit: outcome.observedUnit ?? (outcome.observedValue !== undefined ? '' : 'ms'),
      ...(output !== undefined && output !== '' ? { output } : {}),
      componentType: outcome.componentType || entry.componentType,
      ...(outcome.componentId !== undefined ? { componentId: outcome.componentId } : {}),
      ...(Array.isArray(outcome.affectedEndpoints)
        ? { affectedEndpoints: [...outcome.affectedEndpoints] }
        : {}),
      ...(outcome.details && typeof outcome.details === 'object' ? { details: { ...outcome.details } } : {}),
      time: now,
      durationMs,
      timedOut,
    };
    setLast(entry, result, durationMs);
    events.emit('check', { name: entry.name, status, durationMs, timedOut });
    return result;
  };

  // A run's promise must always settle, or every later report would wait on it: should recording ever
  // throw, the run still settles, as fail.
  const safeRecord = (entry: Entry, outcome: CheckOutcome, startedAt: number, timedOut: boolean) => {
    try {
      return record(entry, outcome, startedAt, timedOut);
    } catch (e) {
      return record(
        entry,
        { status: 'fail', output: `recording the result failed: ${describe(e)}` },
        startedAt,
        timedOut,
      );
    }
  };

  const setLast = (entry: Entry, result: CheckResult, checkDurationMs: number) => {
    const prev = entry.last?.status;
    entry.last = result;
    if (result.status !== 'fail') entry.passedOnce = true;
    if (prev !== result.status) {
      const now = clock.now();
      const t: HealthTransition = {
        name: entry.name,
        from: prev ?? 'unknown',
        to: result.status,
        time: now,
        durationMs: prev === undefined ? 0 : Math.max(0, now - entry.lastChangeAt),
        checkDurationMs,
        ...(result.output !== undefined ? { output: result.output } : {}),
        critical: entry.critical,
        kinds: entry.kinds,
      };
      entry.lastChangeAt = now;
      entry.ring.push(t);
      if (entry.ring.length > historySize) entry.ring.shift();
      if (!entry.removed) events.emit('change', t);
    }
    updateStarted();
  };

  const updateStarted = () => {
    if (started) return;
    // every startup check, critical or not: `pass` must mean all of them got there (until then a
    // non-critical one only makes the startup report `warn`, which is still HTTP 200)
    for (const e of entries.values()) {
      if (e.kinds.includes('startup') && !e.passedOnce) return;
    }
    started = true;
  };

  // `awaited`: a caller waits on this run, so its timeout timer must hold the process open until it settles
  // (a bare script would otherwise exit with code 13 mid-report). A run only the poller started is
  // background work, and its timer is unref'd until a report joins it.
  const run = (entry: Entry, awaited: boolean): Promise<CheckResult> => {
    if (entry.inflight) {
      if (awaited) entry.hold?.();
      return entry.inflight;
    }
    if (entry.running) {
      // The last run outlived its timeout and still has not settled: starting another would stack up
      // hung calls against a dependency that is already in trouble.
      const age = clock.now() - entry.runStartedAt;
      return Promise.resolve(
        record(
          entry,
          {
            status: 'fail',
            observedValue: age,
            observedUnit: 'ms',
            output: `timed out after ${entry.timeoutMs} ms; that run is still in flight after ${age} ms, so no new run was started`,
          },
          clock.now(),
          true,
        ),
      );
    }
    const controller = new AbortController();
    entry.controller = controller;
    entry.running = true;
    const startedAt = clock.now();
    entry.runStartedAt = startedAt;
    const p = new Promise<CheckResult>((resolve) => {
      let settled = false;
      let timer: unknown;
      const settle = (outcome: CheckOutcome, timedOut: boolean) => {
        if (settled) return;
        settled = true;
        clock.clearTimeout(timer);
        if (entry.settle === settle) {
          entry.settle = undefined;
          entry.hold = undefined;
        }
        resolve(safeRecord(entry, outcome, startedAt, timedOut));
      };
      // close() settles a pending run at once, so it can clear this run's timer without leaving a report hanging
      entry.settle = settle;
      const onTimeout = () => {
        if (settled) return;
        controller.abort(
          new OmsHealthError(
            'ERR_OMS_HEALTH_ABORTED',
            `check ${entry.name} timed out after ${entry.timeoutMs} ms`,
          ),
        );
        settle(
          {
            status: 'fail',
            observedValue: entry.timeoutMs,
            observedUnit: 'ms',
            output: `timed out after ${entry.timeoutMs} ms`,
          },
          true,
        );
      };
      if (awaited) {
        timer = clock.setTimeout(onTimeout, entry.timeoutMs);
      } else {
        timer = backgroundTimeout(clock, onTimeout, entry.timeoutMs);
        entry.hold = () => {
          (timer as { ref?: () => unknown } | null)?.ref?.();
        };
      }
      let ret: unknown;
      try {
        ret = entry.check({ signal: controller.signal });
      } catch (e) {
        ret = Promise.reject(e);
      }
      Promise.resolve(ret)
        .then(normalize, (e: unknown) => ({
          status: 'fail' as const,
          output:
            e instanceof Error
              ? describe(e)
              : `check rejected with a non-Error value (${typeof e}): ${describe(e) || '(empty)'}`,
        }))
        .then((outcome) => {
          entry.running = false;
          settle(outcome, false);
        });
    });
    entry.inflight = p;
    void p.then(() => {
      if (entry.inflight === p) entry.inflight = undefined;
    });
    return p;
  };

  const staleness = (entry: Entry): CheckResult | undefined => {
    const last = entry.last;
    if (!last || entry.intervalMs === undefined || entry.staleAfterMs === undefined) return last;
    const age = clock.now() - last.time;
    if (age <= entry.staleAfterMs || last.status === 'fail') return last;
    const stale: CheckResult = {
      ...last,
      status: 'fail',
      output: `stale: the last result is ${age} ms old (staleAfterMs ${entry.staleAfterMs}); the background poller is stuck or behind`,
    };
    setLast(entry, stale, 0);
    return stale;
  };

  const poll = (entry: Entry) => {
    if (closed || entry.removed || entry.intervalMs === undefined) return;
    const interval = entry.intervalMs;
    const startedAt = clock.now();
    void run(entry, false).then(() => {
      if (closed || entry.removed) return;
      const wait = Math.max(0, interval - (clock.now() - startedAt));
      entry.pollTimer = backgroundTimeout(clock, () => poll(entry), wait);
    });
  };

  const current = async (entry: Entry): Promise<CheckResult> => {
    if (entry.intervalMs !== undefined && entry.last) return staleness(entry) as CheckResult;
    return run(entry, true);
  };

  const toEntry = (r: CheckResult): HealthCheckEntry => {
    const out: HealthCheckEntry = {
      componentType: r.componentType,
      observedValue: r.observedValue,
      observedUnit: r.observedUnit,
      status: r.status,
      time: new Date(r.time).toISOString(),
    };
    if (r.componentId !== undefined) out.componentId = r.componentId;
    if (r.output !== undefined && r.status !== 'pass') out.output = r.output;
    if (r.affectedEndpoints && r.status !== 'pass') out.affectedEndpoints = [...r.affectedEndpoints];
    if (r.details) {
      for (const [k, v] of Object.entries(r.details)) if (!STANDARD_KEYS.has(k)) out[k] = v as JsonValue;
    }
    return out;
  };

  const assemble = (
    kind: ReportKind,
    results: { entry: Entry; result: CheckResult | undefined }[],
    forced?: HealthStatus,
  ): HealthReport => {
    const checks: Record<string, HealthCheckEntry[]> = {};
    const problems: string[] = [];
    let status: HealthStatus = 'pass';
    const startupLatched = kind === 'startup' && started;
    for (const { entry, result } of results) {
      const r =
        result ??
        ({
          name: entry.name,
          status: 'fail',
          observedValue: null,
          observedUnit: '',
          output: 'not run yet',
          componentType: entry.componentType,
          time: clock.now(),
          durationMs: 0,
          timedOut: false,
        } satisfies CheckResult);
      checks[entry.name] = [toEntry(r)];
      if (startupLatched) continue;
      let s = r.status;
      // startup gates on "has passed once", not on the latest reading
      if (kind === 'startup' && entry.passedOnce) s = 'pass';
      if (s === 'pass') continue;
      problems.push(`${entry.name}: ${r.output ?? s}`);
      if (s === 'fail' && entry.critical) status = 'fail';
      else if (status === 'pass') status = 'warn';
    }
    if (shutdownAt !== undefined && (kind === 'readiness' || kind === 'all')) {
      const since = Math.max(0, clock.now() - shutdownAt);
      checks[SHUTDOWN_KEY] = [
        {
          componentType: 'system',
          observedValue: since,
          observedUnit: 'ms',
          status: 'fail',
          time: new Date(clock.now()).toISOString(),
          output: 'shutting down: draining in-flight work, not accepting new traffic',
        },
      ];
      problems.unshift(`${SHUTDOWN_KEY}: shutting down`);
      status = 'fail';
    }
    if (forced) status = forced;
    const body: HealthBody = {
      status,
      version: opts.version,
      ...(opts.releaseId !== undefined ? { releaseId: opts.releaseId } : {}),
      serviceId: opts.service,
      ...(opts.description !== undefined ? { description: opts.description } : {}),
      ...(status !== 'pass' && problems.length ? { output: problems.join('; ') } : {}),
      checks,
    };
    return { status, httpStatus: status === 'fail' ? 503 : 200, body };
  };

  const report = async (
    kind: ReportKind = 'all',
    ropts: { signal?: AbortSignal | undefined } = {},
  ): Promise<HealthReport> => {
    if (closed)
      throw new OmsHealthError('ERR_OMS_HEALTH_CLOSED', 'report() after close(): the registry is closed');
    if (kind !== 'all' && !KINDS.includes(kind)) {
      invalid(`kind must be one of ${[...KINDS, 'all'].join(', ')} (got ${JSON.stringify(kind)})`);
    }
    const signal = ropts.signal;
    if (signal?.aborted) throw aborted(signal);
    const selected = [...entries.values()].filter((e) => kind === 'all' || e.kinds.includes(kind));
    const latched = kind === 'startup' && started;
    const work = Promise.all(
      selected.map(async (entry) => {
        // Once draining, readiness is decided; running dependency checks would only add load.
        const cachedOnly = latched || (shutdownAt !== undefined && entry.kinds.includes('readiness'));
        return { entry, result: cachedOnly ? (entry.last ?? undefined) : await current(entry) };
      }),
    );
    const results = signal ? await raceAbort(work, signal) : await work;
    return assemble(kind, results);
  };

  const registry: HealthRegistry = {
    service: opts.service,
    version: opts.version,
    get shuttingDown() {
      return shutdownAt !== undefined;
    },
    get started() {
      return started;
    },
    register(reg) {
      if (closed)
        throw new OmsHealthError('ERR_OMS_HEALTH_CLOSED', 'register() after close(): the registry is closed');
      if (!reg || typeof reg !== 'object') invalid('register(registration) needs an object');
      if (typeof reg.name !== 'string' || !NAME.test(reg.name)) {
        invalid(
          `name must look like component:measurement (health+json), e.g. 'postgres:responseTime' (got ${JSON.stringify(reg.name)})`,
        );
      }
      if (entries.has(reg.name)) {
        throw new OmsHealthError(
          'ERR_OMS_HEALTH_DUPLICATE_CHECK',
          `a check named ${reg.name} is already registered; names must be unique`,
        );
      }
      if (typeof reg.check !== 'function') invalid(`check of ${reg.name} must be a function`);
      if (!Array.isArray(reg.kinds) || reg.kinds.length === 0) {
        invalid(`kinds of ${reg.name} must be a non-empty array of ${KINDS.join(', ')}`);
      }
      for (const k of reg.kinds) {
        if (!KINDS.includes(k))
          invalid(`kinds of ${reg.name} has ${JSON.stringify(k)}; expected ${KINDS.join(', ')}`);
      }
      if (typeof reg.critical !== 'boolean') invalid(`critical of ${reg.name} must be true or false`);
      v.positiveFinite(`timeoutMs of ${reg.name}`, reg.timeoutMs);
      if (reg.intervalMs !== undefined) v.positiveFinite(`intervalMs of ${reg.name}`, reg.intervalMs);
      if (reg.staleAfterMs !== undefined) {
        if (reg.intervalMs === undefined) {
          invalid(`staleAfterMs of ${reg.name} needs intervalMs: only background results can go stale`);
        }
        v.positiveFinite(`staleAfterMs of ${reg.name}`, reg.staleAfterMs);
        if (reg.staleAfterMs <= reg.intervalMs) {
          invalid(
            `staleAfterMs of ${reg.name} must be greater than intervalMs (${reg.intervalMs}), or every result goes stale before the next poll (got ${reg.staleAfterMs})`,
          );
        }
      }
      if (
        reg.componentType !== undefined &&
        (typeof reg.componentType !== 'string' || reg.componentType === '')
      ) {
        invalid(`componentType of ${reg.name} must be a non-empty string`);
      }
      const entry: Entry = {
        name: reg.name,
        check: reg.check,
        kinds: Object.freeze([...new Set(reg.kinds)]),
        critical: reg.critical,
        timeoutMs: reg.timeoutMs,
        intervalMs: reg.intervalMs,
        staleAfterMs:
          reg.intervalMs === undefined ? undefined : (reg.staleAfterMs ?? 2 * reg.intervalMs + reg.timeoutMs),
        componentType: reg.componentType ?? ownType(reg.check) ?? 'component',
        last: undefined,
        lastChangeAt: clock.now(),
        inflight: undefined,
        running: false,
        runStartedAt: 0,
        passedOnce: false,
        controller: undefined,
        settle: undefined,
        hold: undefined,
        pollTimer: undefined,
        removed: false,
        ring: [],
      };
      entries.set(reg.name, entry);
      if (entry.kinds.includes('startup')) started = false;
      // Start polling on the next tick, not inside register(): user code should not run in the caller's frame.
      if (entry.intervalMs !== undefined) entry.pollTimer = backgroundTimeout(clock, () => poll(entry), 0);
    },
    unregister(name) {
      const entry = entries.get(name);
      if (!entry) return false;
      stop(entry, 'the check was unregistered during this run');
      entries.delete(name);
      updateStarted();
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
      const entry = entries.get(name);
      if (!entry) {
        throw new OmsHealthError('ERR_OMS_HEALTH_UNKNOWN_CHECK', `no check named ${name} is registered`);
      }
      return [...entry.ring];
    },
    checks() {
      return [...entries.values()].map((e) => {
        const last = staleness(e);
        return {
          name: e.name,
          kinds: e.kinds,
          critical: e.critical,
          status: last?.status ?? 'unknown',
          ...(last ? { last } : {}),
          running: e.running,
        } satisfies CheckSnapshot;
      });
    },
    on: (event, fn) => events.on(event, fn),
    beginShutdown() {
      if (shutdownAt !== undefined) return;
      shutdownAt = clock.now();
      events.emit('shutdown', { time: shutdownAt });
    },
    async close() {
      if (closed) return;
      closed = true;
      for (const e of entries.values()) stop(e, 'the health registry was closed during this run');
      events.clear();
    },
    [Symbol.asyncDispose]() {
      return registry.close();
    },
  };

  const stop = (entry: Entry, why: string) => {
    entry.removed = true;
    if (entry.pollTimer !== undefined) clock.clearTimeout(entry.pollTimer);
    entry.pollTimer = undefined;
    entry.controller?.abort(new OmsHealthError('ERR_OMS_HEALTH_CLOSED', 'the health registry was closed'));
    entry.settle?.({ status: 'fail', output: why }, false);
    try {
      entry.check.close?.();
    } catch {
      // closing a monitor must not stop the others from closing
    }
  };

  if (opts.processChecks !== false) {
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

  updateStarted();
  return registry;
}

const ownType = (check: HealthCheck): string | undefined =>
  typeof check.componentType === 'string' && check.componentType !== '' ? check.componentType : undefined;
const isString = (x: unknown) => x === undefined || typeof x === 'string';
const isJson = (x: unknown): boolean => {
  try {
    // bigint throws; functions and symbols vanish: either would break the body or lie about the reading
    return x === undefined || JSON.stringify(x) !== undefined;
  } catch {
    return false;
  }
};

/** Says what is wrong with an outcome a (JavaScript) check returned, so it fails instead of breaking the body. */
function malformed(o: CheckOutcome): string | undefined {
  for (const key of ['output', 'observedUnit', 'componentType', 'componentId'] as const) {
    if (!isString(o[key])) return `${key} of type ${typeof o[key]}; expected a string`;
  }
  if (!isJson(o.observedValue)) return `an observedValue that is not JSON (${typeof o.observedValue})`;
  const ends = o.affectedEndpoints;
  if (ends !== undefined && !(Array.isArray(ends) && ends.every((e) => typeof e === 'string'))) {
    return 'affectedEndpoints that is not an array of strings';
  }
  const d = o.details;
  if (d !== undefined && (d === null || typeof d !== 'object' || Array.isArray(d) || !isJson(d))) {
    return 'details that is not a JSON object';
  }
  return undefined;
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
