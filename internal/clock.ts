/**
 * Where time comes from. Inject a fake one in tests; the default is `systemClock`.
 *
 * @example
 * const clock: Clock = { now: () => 0, setTimeout: () => 0, clearTimeout: () => {} };
 */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Schedules `fn` after `ms`; returns a handle for {@link Clock.clearTimeout}. */
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/**
 * The wall clock with plain Node timers. They are ref'd on purpose: a timer that bounds or delays a promise the
 * caller awaits (a timeout, a retry sleep, an acquire wait) must keep a bare script alive until it settles,
 * or Node exits with code 13 in the middle of the await. Background work uses `backgroundTimeout`.
 *
 * @example
 * const at = systemClock.now();
 */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

/**
 * Schedules background work (a poll, a heartbeat, a sweep) that nobody awaits, so it must never hold the process
 * open: the handle is unref'd when the clock's handle supports it.
 *
 * @example
 * const h = backgroundTimeout(systemClock, () => sweep(), 1_000);
 */
export function backgroundTimeout(clock: Clock, fn: () => void, ms: number): unknown {
  const handle = clock.setTimeout(fn, ms);
  (handle as { unref?: () => unknown } | null)?.unref?.();
  return handle;
}

/**
 * Resolves after `ms` on `clock`, or rejects with the signal's reason once it aborts. The timer is ref'd
 * because the caller awaits it.
 *
 * @example
 * await sleep(systemClock, 100, AbortSignal.timeout(1_000));
 */
export function sleep(clock: Clock, ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.reject(signal.reason);
  return new Promise<void>((resolve, reject) => {
    const onAbort = () => {
      clock.clearTimeout(handle);
      reject(signal?.reason);
    };
    const handle = clock.setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
