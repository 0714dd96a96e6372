import { backgroundTimeout, type Clock } from './internal/clock.js';

/**
 * Wakes sleeping relay loops: on a notification, on a due retry, on stop. A wake that arrives while a loop is
 * busy is not lost: the loop remembers the generation it started from and does not sleep if it moved.
 */
export class Waker {
  #generation = 0;
  readonly #waiters = new Set<() => void>();
  readonly #clock: Clock;

  constructor(clock: Clock) {
    this.#clock = clock;
  }

  get generation(): number {
    return this.#generation;
  }

  wake(): void {
    this.#generation++;
    const waiters = [...this.#waiters];
    this.#waiters.clear();
    for (const w of waiters) w();
  }

  /**
   * Resolves after `ms`, or at the next wake. With `since`, resolves at once if a wake already happened after
   * that generation. `hold` keeps the process alive (a stop is awaiting this wait); otherwise the timer is
   * background work and unref'd.
   */
  wait(ms: number, o: { since?: number; hold?: boolean } = {}): Promise<void> {
    if (o.since !== undefined && o.since !== this.#generation) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const done = () => {
        this.#clock.clearTimeout(handle);
        this.#waiters.delete(done);
        resolve();
      };
      const handle = o.hold ? this.#clock.setTimeout(done, ms) : backgroundTimeout(this.#clock, done, ms);
      this.#waiters.add(done);
    });
  }

  /** Wakes loops after `ms` (a retry falls due); unref'd, and cancelled by `cancelAll`. */
  wakeAfter(ms: number): void {
    const handle = backgroundTimeout(
      this.#clock,
      () => {
        this.#timers.delete(handle);
        this.wake();
      },
      ms,
    );
    this.#timers.add(handle);
  }

  readonly #timers = new Set<unknown>();

  cancelAll(): void {
    for (const h of this.#timers) this.#clock.clearTimeout(h);
    this.#timers.clear();
    this.wake();
  }
}
