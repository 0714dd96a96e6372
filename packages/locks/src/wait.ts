import type { Clock } from './internal/clock.js';

/** A number in [0, 1): `Math.random`, or a fixed sequence in a test. */
export type Random = () => number;

/** What a wait rejects with when the acquire's signal aborts; the acquire turns it into its error. */
export const WAIT_ABORTED: unique symbol = Symbol('oms.locks.waitAborted');

/**
 * How long a waiter sleeps before its next try. The poll is jittered to [0.5, 1.5) × `pollMs` so waiters
 * that failed together spread out; the backend's hint (when the holder's lease ends) cuts it short, plus
 * 1 to 6 ms of jitter so the waiters don't all arrive in the same millisecond; the deadline cuts both.
 */
export function waitDelay(
  pollMs: number,
  retryAfterMs: number | undefined,
  remainingMs: number,
  random: Random = Math.random,
): number {
  const poll = pollMs * (0.5 + random());
  const hint = retryAfterMs !== undefined ? retryAfterMs + 1 + random() * 5 : Number.POSITIVE_INFINITY;
  return Math.max(0, Math.min(poll, hint, remainingMs));
}

/** One acquire's waiting between tries: `wake` (a release of its key) ends a sleep early. */
export class Wait {
  /** A wake-up arrived since the last try. */
  woken = false;
  #wakeNow: (() => void) | undefined;

  readonly wake = (): void => {
    this.woken = true;
    this.#wakeNow?.();
  };

  /**
   * Sleeps `ms`, or until woken. Rejects with `WAIT_ABORTED` when `signal` aborts, and with the error a stop
   * function from `stops` is called with (that is how close() ends every wait).
   */
  sleep(
    clock: Clock,
    ms: number,
    signal: AbortSignal | undefined,
    stops: Set<(e: Error) => void>,
  ): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const cleanup = () => {
        clock.clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        stops.delete(stop);
        this.#wakeNow = undefined;
      };
      // ref'd on purpose (systemClock): the caller awaits this wait, so it must hold a bare script open
      const timer = clock.setTimeout(() => {
        cleanup();
        resolve();
      }, ms);
      const onAbort = () => {
        cleanup();
        reject(WAIT_ABORTED);
      };
      const stop = (e: Error) => {
        cleanup();
        reject(e);
      };
      this.#wakeNow = () => {
        cleanup();
        resolve();
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      stops.add(stop);
    });
  }
}
