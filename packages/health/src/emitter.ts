/** A tiny typed emitter: a throwing listener never breaks the registry or other listeners. */
export class Emitter<Events extends object> {
  readonly #listeners = new Map<keyof Events, Set<(e: never) => void>>();

  on<E extends keyof Events>(event: E, fn: (e: Events[E]) => void): () => void {
    let set = this.#listeners.get(event);
    if (!set) {
      set = new Set();
      this.#listeners.set(event, set);
    }
    const listener = fn as (e: never) => void;
    set.add(listener);
    return () => {
      set.delete(listener);
    };
  }

  emit<E extends keyof Events>(event: E, payload: Events[E]): void {
    const set = this.#listeners.get(event);
    if (!set) return;
    for (const fn of [...set]) {
      try {
        (fn as (e: Events[E]) => void)(payload);
      } catch {
        // a listener's bug must not turn a health report into an exception
      }
    }
  }

  clear(): void {
    this.#listeners.clear();
  }
}
