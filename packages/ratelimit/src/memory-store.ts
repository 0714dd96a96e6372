import { type AlgorithmImpl, COMMIT, type Out, PEEK, Slot } from './algorithm.js';
import { invalidOption } from './errors.js';
import type { StoreScope, SyncBinding, SyncStore } from './store.js';
import type { RateLimitStore } from './types.js';
import { positiveInt } from './validate.js';

/** Options of `memoryStore`. */
export interface MemoryStoreOptions {
  /** Most keys kept across every limiter bound to the store; beyond it the least recently used go. Default 100_000. */
  maxKeys?: number;
}

class Partition implements SyncBinding {
  readonly map = new Map<string, Slot>();
  readonly #scratch = new Slot();
  constructor(readonly store: MemoryStoreImpl) {}

  slot(key: string, now: number, create: boolean): Slot {
    const s = this.map.get(key);
    if (s !== undefined) {
      this.store.touch(s);
      // lazy expiry: a slot past the time its state could matter reads as new
      if (now >= s.exp) s.exp = 0;
      return s;
    }
    if (!create) {
      const t = this.#scratch;
      t.exp = 0;
      return t;
    }
    const n = new Slot();
    n.key = key;
    n.owner = this.map;
    this.store.admit(n);
    this.map.set(key, n);
    return n;
  }

  apply(
    key: string,
    alg: AlgorithmImpl,
    p: Float64Array,
    cost: number,
    mode: number,
    now: number,
    out: Out,
  ): void {
    alg.step(this.slot(key, now, mode !== PEEK), now, p, cost, mode, now, out);
  }

  reset(key: string): void {
    const s = this.map.get(key);
    if (s !== undefined) this.store.remove(s);
  }
}

class MemoryStoreImpl implements SyncStore {
  readonly kind = 'memory';
  readonly sync = true;
  size = 0;
  readonly #parts = new Map<string, Partition>();
  // a doubly linked list through the slots, least recently used at the head: O(1) touch and eviction
  #head: Slot | null = null;
  #tail: Slot | null = null;
  constructor(readonly maxKeys: number) {}

  bind(name: string): Partition {
    let p = this.#parts.get(name);
    if (!p) {
      p = new Partition(this);
      this.#parts.set(name, p);
    }
    return p;
  }

  touch(s: Slot): void {
    if (s === this.#tail) return;
    const { prev, next } = s;
    if (prev !== null) prev.next = next;
    else this.#head = next;
    next!.prev = prev;
    s.prev = this.#tail;
    s.next = null;
    this.#tail!.next = s;
    this.#tail = s;
  }

  /** Links a new slot at the tail, evicting the least recently used one when full. */
  admit(s: Slot): void {
    if (this.size >= this.maxKeys && this.#head !== null) this.remove(this.#head);
    s.prev = this.#tail;
    if (this.#tail !== null) this.#tail.next = s;
    else this.#head = s;
    this.#tail = s;
    this.size++;
  }

  remove(s: Slot): void {
    const { prev, next } = s;
    if (prev !== null) prev.next = next;
    else this.#head = next;
    if (next !== null) next.prev = prev;
    else this.#tail = prev;
    s.prev = s.next = null;
    s.owner!.delete(s.key);
    this.size--;
  }

  applyAll(scopes: readonly StoreScope[], cost: number, now: number, outs: Out[]): number {
    let denied = -1;
    for (let i = 0; i < scopes.length; i++) {
      const sc = scopes[i]!;
      this.bind(sc.name).apply(sc.key, sc.alg, sc.p, cost, PEEK, now, outs[i]!);
      if (!outs[i]!.allowed && denied < 0) denied = i;
    }
    if (denied >= 0) return denied;
    // everything is synchronous, so nothing can change between the check and the charge
    for (let i = 0; i < scopes.length; i++) {
      const sc = scopes[i]!;
      this.bind(sc.name).apply(sc.key, sc.alg, sc.p, cost, COMMIT, now, outs[i]!);
    }
    return -1;
  }
}

/**
 * The default store: per-process, bounded to `maxKeys` keys with exact LRU eviction (a linked list
 * through the entries, O(1) per call) and lazy expiry, so it needs no timer per
 * key and never grows past the bound. Limiters of the same name on one store share state.
 *
 * @example
 * const store = memoryStore({ maxKeys: 50_000 });
 * const perUser = rateLimiter({ name: 'user', algorithm: gcra({ limit: 100, periodMs: 60_000 }), store });
 */
export function memoryStore(o: MemoryStoreOptions = {}): RateLimitStore {
  if (o === null || typeof o !== 'object') throw invalidOption('memoryStore() takes { maxKeys? }');
  const maxKeys = o.maxKeys ?? 100_000;
  positiveInt('maxKeys', maxKeys);
  return new MemoryStoreImpl(maxKeys);
}

/** Keys currently held, for tests and metrics. */
export const memoryStoreSize = (s: RateLimitStore): number => (s as MemoryStoreImpl).size;
