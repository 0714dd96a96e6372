import { invalid, isRejection } from './errors.js';
import { systemClock } from './internal/clock.js';
import type { BreakerPeer, BreakerStoreLink, CircuitBreakerOptions, Clock, WindowOptions } from './types.js';
import { func, isObject, policyName, requireObject, v } from './validate.js';
import { CountWindow, type OutcomeWindow, TimeWindow } from './windows.js';

/**
 * A breaker's options, validated and with every default applied. Parsed once at construction; the hot path
 * reads it and never checks an option again. A trigger that is off has a value that can never fire.
 */
export interface BreakerConfig {
  readonly name: string;
  readonly clock: Clock;
  readonly isFailure: (err: unknown) => boolean;
  /** Failures in a row that trip the breaker; 0 when that trigger is off. */
  readonly maxConsecutive: number;
  /** The failure-rate window, or null when that trigger is off. */
  readonly fw: OutcomeWindow | null;
  readonly threshold: number;
  readonly minCalls: number;
  /** The slow-call window (the failure window itself when both describe the same window), or null. */
  readonly sw: OutcomeWindow | null;
  readonly slowMs: number;
  readonly slowRate: number;
  readonly slowMinCalls: number;
  readonly openInitial: number;
  readonly openMax: number;
  readonly openFactor: number;
  readonly maxProbes: number;
  readonly successesToClose: number;
  readonly maxWaitMs: number;
}

const defaultIsFailure = (err: unknown): boolean => !isRejection(err);

function windowOf(label: string, w: unknown): OutcomeWindow {
  requireObject(label, w);
  if ('calls' in w) return new CountWindow(v.integer(`${label}.calls`, w.calls, { min: 1 }));
  if ('ms' in w) {
    const ms = v.positiveFinite(`${label}.ms`, w.ms);
    const buckets =
      w.buckets === undefined ? 10 : v.integer(`${label}.buckets`, w.buckets, { min: 1, max: 1000 });
    return new TimeWindow(ms, buckets);
  }
  throw invalid(`${label} must be { calls } or { ms, buckets? }`);
}

function sameWindow(a: WindowOptions, b: WindowOptions): boolean {
  if ('calls' in a && 'calls' in b) return a.calls === b.calls;
  if ('ms' in a && 'ms' in b) return a.ms === b.ms && (a.buckets ?? 10) === (b.buckets ?? 10);
  return false;
}

type FailureRate = Pick<BreakerConfig, 'fw' | 'threshold' | 'minCalls'>;
type SlowCall = Pick<BreakerConfig, 'sw' | 'slowMs' | 'slowRate' | 'slowMinCalls'>;
type OpenPeriod = Pick<BreakerConfig, 'openInitial' | 'openMax' | 'openFactor'>;
type HalfOpenLimits = Pick<BreakerConfig, 'maxProbes' | 'successesToClose' | 'maxWaitMs'>;

function failureRate(o: CircuitBreakerOptions): FailureRate {
  if (o.failureRate === undefined) return { fw: null, threshold: 1, minCalls: 1 };
  requireObject('failureRate', o.failureRate);
  const threshold = v.fraction('failureRate.threshold', o.failureRate.threshold);
  const minCalls = v.integer('failureRate.minimumThroughput', o.failureRate.minimumThroughput, { min: 1 });
  return { threshold, minCalls, fw: windowOf('failureRate.window', o.failureRate.window) };
}

function slowCall(o: CircuitBreakerOptions, fw: OutcomeWindow | null): SlowCall {
  if (o.slowCall === undefined) {
    return { sw: null, slowMs: Number.POSITIVE_INFINITY, slowRate: 1, slowMinCalls: 1 };
  }
  requireObject('slowCall', o.slowCall);
  const slowMs = v.durationMs('slowCall.thresholdMs', o.slowCall.thresholdMs);
  const slowRate = v.fraction('slowCall.rate', o.slowCall.rate);
  const slowMinCalls =
    o.slowCall.minimumThroughput === undefined
      ? (o.failureRate?.minimumThroughput ?? 10)
      : v.integer('slowCall.minimumThroughput', o.slowCall.minimumThroughput, { min: 1 });
  const w = o.slowCall.window ?? o.failureRate?.window ?? { calls: 100 };
  // One window serves both triggers when they describe the same one: each call is recorded once.
  const sw =
    fw !== null && o.failureRate !== undefined && sameWindow(w, o.failureRate.window)
      ? fw
      : windowOf('slowCall.window', w);
  return { sw, slowMs, slowRate, slowMinCalls };
}

function openPeriod(o: CircuitBreakerOptions): OpenPeriod {
  const openMs = o.openMs ?? 10_000;
  if (typeof openMs === 'number') {
    const ms = v.durationMs('openMs', openMs);
    return { openInitial: ms, openMax: ms, openFactor: 1 };
  }
  requireObject('openMs', openMs);
  const openInitial = v.durationMs('openMs.initialMs', openMs.initialMs);
  const openMax = v.durationMs('openMs.maxMs', openMs.maxMs);
  const openFactor = openMs.factor === undefined ? 2 : v.positiveFinite('openMs.factor', openMs.factor);
  if (openMax < openInitial) {
    throw invalid(`openMs.maxMs must be >= openMs.initialMs (got ${openMax} < ${openInitial})`);
  }
  if (openFactor < 1) throw invalid(`openMs.factor must be >= 1 (got ${openFactor})`);
  return { openInitial, openMax, openFactor };
}

function halfOpenLimits(o: CircuitBreakerOptions): HalfOpenLimits {
  const h = o.halfOpen ?? {};
  requireObject('halfOpen', h);
  return {
    maxProbes:
      h.maxConcurrent === undefined ? 1 : v.integer('halfOpen.maxConcurrent', h.maxConcurrent, { min: 1 }),
    successesToClose:
      h.successesToClose === undefined
        ? 1
        : v.integer('halfOpen.successesToClose', h.successesToClose, { min: 1 }),
    maxWaitMs:
      h.maxWaitMs === undefined
        ? Number.POSITIVE_INFINITY
        : v.positiveFinite('halfOpen.maxWaitMs', h.maxWaitMs),
  };
}

/**
 * Validates every option of `circuitBreaker()` (except `restore` and `store`, which need the breaker) and
 * applies the defaults. With no trigger given the breaker trips after 5 failures in a row.
 */
export function parseOptions(o: CircuitBreakerOptions): BreakerConfig {
  requireObject('circuitBreaker options', o);
  const name = policyName('name', o.name);
  const clock = v.clock(o.clock, systemClock);
  const isFailure =
    o.isFailure === undefined ? defaultIsFailure : func<BreakerConfig['isFailure']>('isFailure', o.isFailure);
  const noTrigger =
    o.consecutiveFailures === undefined && o.failureRate === undefined && o.slowCall === undefined;
  const maxConsecutive = noTrigger
    ? 5
    : o.consecutiveFailures === undefined
      ? 0
      : v.integer('consecutiveFailures', o.consecutiveFailures, { min: 1 });
  const rate = failureRate(o);
  return Object.freeze({
    name,
    clock,
    isFailure,
    maxConsecutive,
    ...rate,
    ...slowCall(o, rate.fw),
    ...openPeriod(o),
    ...halfOpenLimits(o),
  });
}

/** Validates the `store` option and attaches the breaker to it. */
export function storeLink(store: unknown, peer: BreakerPeer): BreakerStoreLink {
  if (!isObject(store) || typeof store.attach !== 'function') {
    throw invalid('store must have attach(peer), for example redisBreakerStore({ redis, prefix })');
  }
  return store.attach(peer) as BreakerStoreLink;
}
