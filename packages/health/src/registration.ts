import { systemClock } from './internal/clock.js';
import type { Entry } from './runner.js';
import type { CheckKind, CheckRegistration, Clock, HealthCheck, HealthRegistryOptions } from './types.js';
import { invalid, v } from './validate.js';

export const KINDS: readonly CheckKind[] = ['liveness', 'readiness', 'startup'];
// health+json keys are `{componentName}:{measurementName}`, neither part containing a colon
const NAME = /^[^:\s]+:[^:\s]+$/;

/** The registry options, validated: the history size and the clock, with their defaults. */
export function parseRegistryOptions(opts: HealthRegistryOptions): { historySize: number; clock: Clock } {
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
  return { historySize, clock: v.clock(opts.clock, systemClock) };
}

const ownType = (check: HealthCheck): string | undefined =>
  typeof check.componentType === 'string' && check.componentType !== '' ? check.componentType : undefined;

function checkTiming(reg: CheckRegistration): void {
  v.positiveFinite(`timeoutMs of ${reg.name}`, reg.timeoutMs);
  if (reg.intervalMs !== undefined) v.positiveFinite(`intervalMs of ${reg.name}`, reg.intervalMs);
  if (reg.staleAfterMs === undefined) return;
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

/**
 * Validates a registration (all but the uniqueness of its name, which the registry checks in between) and
 * makes the entry the runner keeps, with the defaults applied.
 */
export function checkRegistration(reg: CheckRegistration, isTaken: (name: string) => void): void {
  if (!reg || typeof reg !== 'object') invalid('register(registration) needs an object');
  if (typeof reg.name !== 'string' || !NAME.test(reg.name)) {
    invalid(
      `name must look like component:measurement (health+json), e.g. 'postgres:responseTime' (got ${JSON.stringify(reg.name)})`,
    );
  }
  isTaken(reg.name);
  if (typeof reg.check !== 'function') invalid(`check of ${reg.name} must be a function`);
  if (!Array.isArray(reg.kinds) || reg.kinds.length === 0) {
    invalid(`kinds of ${reg.name} must be a non-empty array of ${KINDS.join(', ')}`);
  }
  for (const k of reg.kinds) {
    if (!KINDS.includes(k))
      invalid(`kinds of ${reg.name} has ${JSON.stringify(k)}; expected ${KINDS.join(', ')}`);
  }
  if (typeof reg.critical !== 'boolean') invalid(`critical of ${reg.name} must be true or false`);
  checkTiming(reg);
  if (
    reg.componentType !== undefined &&
    (typeof reg.componentType !== 'string' || reg.componentType === '')
  ) {
    invalid(`componentType of ${reg.name} must be a non-empty string`);
  }
}

/** A new entry of a valid registration, with the defaults applied and nothing run yet. */
export function newEntry(reg: CheckRegistration, now: number): Entry {
  return {
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
    lastChangeAt: now,
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
}
