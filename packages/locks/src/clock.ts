import type { Clock } from './types.js';

/**
 * The real clock; its timers are unref'd so a pending lease heartbeat never keeps the process alive.
 *
 * @example
 * const locks = memoryLocks({ clock: systemClock });
 */
export const systemClock: Clock = {
  now: Date.now,
  setTimeout: (fn, ms) => setTimeout(fn, ms).unref(),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};
