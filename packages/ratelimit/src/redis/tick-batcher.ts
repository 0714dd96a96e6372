// Keeps one script run short: Redis serves nobody else while it runs.
export const MAX_BATCH = 256;

/**
 * Collects the calls of one event-loop tick and hands them over together once the tick's synchronous code is
 * done (a microtask: no added latency), so they share one round trip and one script run.
 *
 * A call on a key already waiting closes the batch first and goes in the next one: one script run reads TIME
 * once, and calls on one key at one instant would make the algorithms' float state arithmetic decide ties (a
 * token bucket would deny what separate runs a microsecond apart admit).
 */
export class TickBatcher<T> {
  #q: T[] = [];
  readonly #keys = new Set<string>();

  constructor(
    readonly max: number,
    readonly send: (batch: T[]) => void,
  ) {}

  /** Queues `item`, whose Redis keys are `keys`. */
  add(item: T, keys: string | readonly string[]): void {
    const seen = this.#keys;
    if (typeof keys === 'string') {
      if (seen.has(keys)) this.flush();
      seen.add(keys);
    } else {
      for (const k of keys) {
        if (seen.has(k)) {
          this.flush();
          break;
        }
      }
      for (const k of keys) seen.add(k);
    }
    const q = this.#q;
    q.push(item);
    if (q.length === 1) queueMicrotask(this.flush);
    else if (q.length >= this.max) this.flush();
  }

  readonly flush = (): void => {
    const q = this.#q;
    if (q.length === 0) return;
    this.#q = [];
    this.#keys.clear();
    this.send(q);
  };
}
