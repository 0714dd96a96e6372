/** A tiny typed emitter: a throwing listener never breaks a decision or other listeners. */
export class Emitter<Events extends object> {
  readonly #listeners = new Map<keyof Events, ((e: never) => void)[]>();
  /** Listener count per event, readable without a Map lookup by hot paths that check before emitting. */
  onChange: (() => void) | undefined;

  on<E extends keyof Events>(event: E, fn: (e: Events[E]) => void): () => void {
    const list = [...(this.#listeners.get(event) ?? []), fn as (e: never) => void];
    this.#listeners.set(event, list);
    this.onChange?.();
    return () => {
      const cur = this.#listeners.get(event);
      if (!cur) return;
      const next = cur.filter((f) => f !== fn);
      if (next.length) this.#listeners.set(event, next);
      else this.#listeners.delete(event);
      this.onChange?.();
    };
  }

  /** Lets the hot path skip building a payload (and reading the clock) when nobody listens. */
  has(event: keyof Events): boolean {
    return this.#listeners.has(event);
  }

  emit<E extends keyof Events>(event: E, payload: Events[E]): void {
    const list = this.#listeners.get(event);
    if (!list) return;
    for (const fn of list) {
      try {
        (fn as (e: Events[E]) => void)(payload);
      } catch {
        // a listener's bug must not turn a rate-limit decision into an exception
      }
    }
  }

  clear(): void {
    this.#listeners.clear();
    this.onChange?.();
  }
}
