import type { Backoff } from './types.js';
import { requireObject, v } from './validate.js';

/**
 * The same delay before every retry.
 *
 * @example
 * retry({ maxAttempts: 4, backoff: constantBackoff(250) });
 */
export function constantBackoff(delayMs: number): Backoff {
  const d = v.durationMs('delayMs', delayMs);
  return Object.freeze({ kind: 'constant' as const, delay: () => d });
}

/**
 * `initialMs + stepMs × (retry − 1)`.
 *
 * @example
 * retry({ backoff: linearBackoff({ initialMs: 100, stepMs: 100 }) }); // 100, 200, 300 ms
 */
export function linearBackoff(o: { initialMs: number; stepMs?: number }): Backoff {
  requireObject('linearBackoff options', o);
  const initial = v.durationMs('initialMs', o.initialMs);
  const step = o.stepMs === undefined ? initial : v.durationMs('stepMs', o.stepMs);
  return Object.freeze({ kind: 'linear' as const, delay: (n: number) => initial + step * (n - 1) });
}

/**
 * `initialMs × factor^(retry − 1)`, without jitter (prefer a jittered one when many clients retry together).
 *
 * @example
 * retry({ backoff: exponentialBackoff({ initialMs: 50, factor: 2 }) }); // 50, 100, 200 ms
 */
export function exponentialBackoff(o: { initialMs: number; factor?: number }): Backoff {
  requireObject('exponentialBackoff options', o);
  const initial = v.durationMs('initialMs', o.initialMs);
  const factor = o.factor === undefined ? 2 : v.positiveFinite('factor', o.factor);
  return Object.freeze({ kind: 'exponential' as const, delay: (n: number) => initial * factor ** (n - 1) });
}

/**
 * "Full jitter" (AWS Architecture Blog): `rand(0, min(cap, initialMs × factor^(retry − 1)))`.
 *
 * @example
 * retry({ backoff: fullJitterBackoff({ initialMs: 100 }), maxDelayMs: 5_000 });
 */
export function fullJitterBackoff(o: { initialMs: number; factor?: number }): Backoff {
  requireObject('fullJitterBackoff options', o);
  const initial = v.durationMs('initialMs', o.initialMs);
  const factor = o.factor === undefined ? 2 : v.positiveFinite('factor', o.factor);
  return Object.freeze({
    kind: 'full-jitter' as const,
    delay: (n: number, _prev: number, random: () => number, cap: number) =>
      random() * Math.min(cap, initial * factor ** (n - 1)),
  });
}

/**
 * "Decorrelated jitter": `sleep = min(cap, rand(baseMs, prev × 3))`, spreading retries of many clients while
 * still growing.
 *
 * @example
 * retry({ backoff: decorrelatedJitterBackoff({ baseMs: 100 }), maxDelayMs: 10_000 });
 */
export function decorrelatedJitterBackoff(o: { baseMs: number }): Backoff {
  requireObject('decorrelatedJitterBackoff options', o);
  const base = v.durationMs('baseMs', o.baseMs);
  return Object.freeze({
    kind: 'decorrelated-jitter' as const,
    delay: (_n: number, prev: number, random: () => number, cap: number) => {
      const hi = Math.max(base, (prev > 0 ? prev : base) * 3);
      return Math.min(cap, base + random() * (hi - base));
    },
  });
}
