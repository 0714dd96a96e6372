type Listener<E> = (event: E) => void;

/** One registration. Its identity, not the function's, decides what an unsubscribe removes. */
interface Registration<E> {
  readonly fn: Listener<E>;
}

/**
 * A small typed emitter, the one every @oms package uses.
 *
 * - `on()` returns an unsubscribe that removes exactly that registration: the same function subscribed twice
 *   is called twice, and each unsubscribe removes one. Calling an unsubscribe again does nothing.
 * - `has(event)` is the hot-path check, so a caller can skip building an event nobody listens to.
 * - A throwing listener is isolated: it never breaks the call that emitted, nor the other listeners.
 * - Lists are copied on write, so a listener added or removed during an emit takes effect from the next emit.
 *
 * @example
 * const events = new Emitter<{ change: { to: string } }>();
 * const off = events.on('change', (e) => void e.to);
 * events.emit('change', { to: 'open' });
 * off();
 */
export class Emitter<Events extends object> {
  readonly #lists = new Map<keyof Events, readonly Registration<never>[]>();

  /** Subscribes `fn` to `event`; returns the function that removes this registration. */
  on<K extends keyof Events>(event: K, fn: Listener<Events[K]>): () => void {
    if (typeof fn !== 'function') {
      throw new TypeError(`listener for '${String(event)}' must be a function (got ${typeof fn})`);
    }
    const reg: Registration<Events[K]> = { fn };
    this.#lists.set(event, [...(this.#lists.get(event) ?? []), reg as Registration<never>]);
    let live = true;
    return () => {
      if (!live) return;
      live = false;
      const next = (this.#lists.get(event) ?? []).filter((r) => r !== (reg as Registration<never>));
      if (next.length > 0) this.#lists.set(event, next);
      else this.#lists.delete(event);
    };
  }

  /** True when `event` has at least one listener. */
  has(event: keyof Events): boolean {
    return this.#lists.has(event);
  }

  /** Calls every listener of `event` with `payload`, in subscription order. */
  emit<K extends keyof Events>(event: K, payload: Events[K]): void {
    const list = this.#lists.get(event) as readonly Registration<Events[K]>[] | undefined;
    if (list === undefined) return;
    for (const reg of list) {
      try {
        reg.fn(payload);
      } catch {
        // A listener's bug (a metrics exporter, a logger) must not turn the caller's success into a failure.
      }
    }
  }

  /** The number of registrations across all events; tests use it to prove nothing leaks. */
  listenerCount(): number {
    let n = 0;
    for (const list of this.#lists.values()) n += list.length;
    return n;
  }

  /** Removes every registration, as `close()` does. */
  clear(): void {
    this.#lists.clear();
  }
}
