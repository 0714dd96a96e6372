import type { Clock } from './types.js';

/**
 * The real clock: `Date.now()` and unref'd Node timers, so a pending breaker or retry timer never keeps the
 * process alive.
 *
 * @example
 * const b = circuitBreaker({ name: 'db', clock: systemClock });
 */
export const systemClock: Clock = {
  now: Date.now,
  setTimeout: (fn, ms) => setTimeout(fn, ms).unref(),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};
