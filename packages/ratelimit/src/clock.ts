import type { Clock } from './types.js';

/**
 * The wall clock with unref'd timers, the default `Clock`.
 *
 * @example
 * rateLimiter({ name: 'api', algorithm: gcra({ limit: 10, periodMs: 1000 }), clock: systemClock });
 */
export const systemClock: Clock = {
  now: Date.now,
  setTimeout: (fn, ms) => setTimeout(fn, ms).unref(),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};
