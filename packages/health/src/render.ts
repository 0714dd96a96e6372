import type {
  CheckResult,
  HealthBody,
  HealthCheckEntry,
  HealthReport,
  HealthStatus,
  JsonValue,
  ReportKind,
} from './types.js';

/** The draft's own keys of a check entry: a check's `details` never overwrite them. */
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

/** The key of the entry a registry that is shutting down adds to its readiness report. */
export const SHUTDOWN_KEY = 'process:shutdown';

/**
 * One check result as a health+json check entry. `output` and `affectedEndpoints` only appear when the
 * check is not passing; `details` add keys of their own, never the draft's.
 */
export function toEntry(r: CheckResult): HealthCheckEntry {
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
}

/** What a report needs to know of a check besides its result. */
export interface CheckInfo {
  readonly name: string;
  readonly critical: boolean;
  readonly componentType: string;
  /** Startup gates on "has passed once", not on the latest reading. */
  readonly passedOnce: boolean;
}

/** One check in a report, and its result (undefined when it has not run yet). */
export interface ReportedCheck {
  readonly check: CheckInfo;
  readonly result: CheckResult | undefined;
}

/** The registry's side of a report: who is reporting, its lifecycle, and the time of the report. */
export interface ReportContext {
  readonly service: string;
  readonly version: string;
  readonly releaseId?: string | undefined;
  readonly description?: string | undefined;
  /** Every startup check has passed once: the startup report is `pass` from then on. */
  readonly started: boolean;
  /** When beginShutdown() was called, if it was. */
  readonly shutdownAt: number | undefined;
  readonly now: number;
}

const notRunYet = (c: CheckInfo, now: number): CheckResult => ({
  name: c.name,
  status: 'fail',
  observedValue: null,
  observedUnit: '',
  output: 'not run yet',
  componentType: c.componentType,
  time: now,
  durationMs: 0,
  timedOut: false,
});

/**
 * Renders a report of `kind` from its checks: a health+json body and the HTTP status a probe answers with
 * (503 for `fail`, else 200). A failing critical check fails the report, any other non-pass makes it `warn`;
 * a registry that is shutting down fails readiness.
 */
export function assemble(
  kind: ReportKind,
  checks: readonly ReportedCheck[],
  ctx: ReportContext,
): HealthReport {
  const entries: Record<string, HealthCheckEntry[]> = {};
  const problems: string[] = [];
  let status: HealthStatus = 'pass';
  const startupLatched = kind === 'startup' && ctx.started;
  for (const { check: c, result } of checks) {
    const r = result ?? notRunYet(c, ctx.now);
    entries[c.name] = [toEntry(r)];
    if (startupLatched) continue;
    let s = r.status;
    if (kind === 'startup' && c.passedOnce) s = 'pass';
    if (s === 'pass') continue;
    problems.push(`${c.name}: ${r.output ?? s}`);
    if (s === 'fail' && c.critical) status = 'fail';
    else if (status === 'pass') status = 'warn';
  }
  if (ctx.shutdownAt !== undefined && (kind === 'readiness' || kind === 'all')) {
    entries[SHUTDOWN_KEY] = [
      {
        componentType: 'system',
        observedValue: Math.max(0, ctx.now - ctx.shutdownAt),
        observedUnit: 'ms',
        status: 'fail',
        time: new Date(ctx.now).toISOString(),
        output: 'shutting down: draining in-flight work, not accepting new traffic',
      },
    ];
    problems.unshift(`${SHUTDOWN_KEY}: shutting down`);
    status = 'fail';
  }
  const body: HealthBody = {
    status,
    version: ctx.version,
    ...(ctx.releaseId !== undefined ? { releaseId: ctx.releaseId } : {}),
    serviceId: ctx.service,
    ...(ctx.description !== undefined ? { description: ctx.description } : {}),
    ...(status !== 'pass' && problems.length ? { output: problems.join('; ') } : {}),
    checks: entries,
  };
  return { status, httpStatus: status === 'fail' ? 503 : 200, body };
}
