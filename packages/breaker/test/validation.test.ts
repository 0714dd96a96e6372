import { describe, expect, it } from 'vitest';
import {
  adaptiveConcurrency,
  bulkhead,
  circuitBreaker,
  constantBackoff,
  exponentialBackoff,
  isOmsBreakerError,
  retry,
  retryBudget,
  timeout,
} from '../src/index.js';

function invalid(make: () => unknown, mentions: string) {
  let err: unknown;
  try {
    make();
  } catch (e) {
    err = e;
  }
  expect(isOmsBreakerError(err) && err.code, `expected ERR_OMS_BREAKER_INVALID_OPTION for ${mentions}`).toBe(
    'ERR_OMS_BREAKER_INVALID_OPTION',
  );
  expect((err as Error).message).toContain(mentions);
}

const bad = [-1, Number.NaN, Number.POSITIVE_INFINITY];

describe('bad input fails at construction with a typed OmsBreakerError', () => {
  it('thresholds outside [0, 1]', () => {
    for (const t of [-0.1, 1.5, Number.NaN]) {
      invalid(
        () =>
          circuitBreaker({
            name: 'x',
            failureRate: { threshold: t, minimumThroughput: 1, window: { calls: 5 } },
          }),
        'failureRate.threshold',
      );
      invalid(() => circuitBreaker({ name: 'x', slowCall: { thresholdMs: 10, rate: t } }), 'slowCall.rate');
      invalid(() => retryBudget({ ratio: t }), 'ratio');
    }
  });

  it('negative, NaN or Infinity durations', () => {
    for (const d of bad) {
      invalid(() => circuitBreaker({ name: 'x', openMs: d }), 'openMs');
      invalid(() => circuitBreaker({ name: 'x', openMs: { initialMs: d, maxMs: 10 } }), 'openMs.initialMs');
      invalid(() => circuitBreaker({ name: 'x', halfOpen: { maxWaitMs: d } }), 'halfOpen.maxWaitMs');
      invalid(
        () => circuitBreaker({ name: 'x', slowCall: { thresholdMs: d, rate: 0.5 } }),
        'slowCall.thresholdMs',
      );
      invalid(
        () =>
          circuitBreaker({
            name: 'x',
            failureRate: { threshold: 0.5, minimumThroughput: 1, window: { ms: d } },
          }),
        'failureRate.window.ms',
      );
      invalid(() => timeout(d), 'ms');
      invalid(() => retry({ maxDelayMs: d }), 'maxDelayMs');
      invalid(() => constantBackoff(d), 'delayMs');
      invalid(() => exponentialBackoff({ initialMs: d }), 'initialMs');
      invalid(() => bulkhead({ maxConcurrent: 1, queueTimeoutMs: d }), 'queueTimeoutMs');
      invalid(() => retryBudget({ ttlMs: d }), 'ttlMs');
    }
    invalid(() => timeout(0), 'ms');
  });

  it('a maxConcurrent < 1', () => {
    for (const n of [0, -1, 1.5, Number.NaN]) {
      invalid(() => bulkhead({ maxConcurrent: n }), 'maxConcurrent');
      invalid(() => circuitBreaker({ name: 'x', halfOpen: { maxConcurrent: n } }), 'halfOpen.maxConcurrent');
    }
  });

  it('other options', () => {
    invalid(() => circuitBreaker({ name: '' }), 'name');
    invalid(() => circuitBreaker({ name: 'x', consecutiveFailures: 0 }), 'consecutiveFailures');
    invalid(
      () => circuitBreaker({ name: 'x', halfOpen: { successesToClose: 0 } }),
      'halfOpen.successesToClose',
    );
    invalid(() => circuitBreaker({ name: 'x', openMs: { initialMs: 100, maxMs: 10 } }), 'openMs.maxMs');
    invalid(() => retry({ maxAttempts: 0 }), 'maxAttempts');
    invalid(() => timeout(10, { strategy: 'eager' as 'aggressive' }), 'strategy');
    invalid(() => adaptiveConcurrency({ algorithm: 'vegas' as 'aimd' }), 'algorithm');
    invalid(() => adaptiveConcurrency({ algorithm: 'aimd', minLimit: 10, maxLimit: 5 }), 'maxLimit');
    invalid(() => circuitBreaker({ name: 'x', store: {} as never }), 'store');
  });
});
