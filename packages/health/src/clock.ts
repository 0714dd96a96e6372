import type { Clock } from './types.js';

/**
 * The real clock: `Date.now` and unref'd timers, so a health registry never keeps a process alive.
 *
 * @example
 * const registry = healthRegistry({ service: 'orders', version: '1.4.0', clock: systemClock });
 */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms).unref(),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};
