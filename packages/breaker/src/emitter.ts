import type { Unsubscribe } from './types.js';

type Listener<E> = (event: E) => void;

/**
 * A tiny typed emitter. Listener lists are `undefined` when empty so the hot path can skip building an event
 * object with one property read. A throwing listener is isolated: telemetry must never break a call.
 */
export class Emitter<M> {
  readonly l: { [K in keyof M]?: Listener<M[K]>[] } = {};

  on<K extends keyof M>(event: K, fn: Listener<M[K]>): Unsubscribe {
    if (typeof fn !== 'function') throw new TypeError(`listener for '${String(event)}' must be a function`);
    const list = this.l[event] ?? [];
    // Copy-on-write so an emit in progress keeps iterating the list it started with.
    this.l[event] = [...list, fn];
    let live = true;
    return () => {
      if (!live) return;
      live = false;
      // Remove this registration only: the same function subscribed twice stays subscribed once.
      const next = [...(this.l[event] ?? [])];
      const i = next.lastIndexOf(fn);
      if (i >= 0) next.splice(i, 1);
      this.l[event] = next.length ? next : undefined;
    };
  }

  emit<K extends keyof M>(event: K, e: M[K]): void {
    const list = this.l[event];
    if (list === undefined) return;
    for (const fn of list) {
      try {
        fn(e);
      } catch {
        // Swallowed on purpose: a broken metrics listener must not turn a successful call into a failure.
      }
    }
  }

  count(): number {
    let n = 0;
    for (const k in this.l) n += this.l[k]?.length ?? 0;
    return n;
  }

  clear(): void {
    for (const k in this.l) this.l[k] = undefined;
  }
}
