import { type AlgorithmImpl, Mode, type Out, Slot } from './algorithm.js';
import { invalidOption } from './errors.js';
import type { StoreImpl, StoreScope, SyncBinding, SyncStore } from './store.js';
import type { RateLimitStore } from './types.js';
import { v } from './validate.js';

/**
 * Options of `memoryStore`.
 *
 * @example
 * memoryStore({ maxKeys: 50_000 });
 */
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
      s.gen = ++this.store.tick;
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
    mode: Mode,
    now: number,
    out: Out,
  ): void {
    alg.step(this.slot(key, now, mode !== Mode.peek), now, p, cost, mode, now, out);
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
  tick = 0;
  readonly #parts = new Map<string, Partition>();
  // a doubly linked list through the slots in admission order (the eviction candidates at the head)
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

  /**
   * Links a new slot at the tail, evicting when full. A hit only stamps the slot (no relinking, which would
   * touch two neighbours' cache lines per call); eviction walks from the head and moves a slot used within
   * the last maxKeys / 2 calls to the tail instead of evicting it (amortised O(1): each move pays for a hit).
   */
  admit(s: Slot): void {
    if (this.size >= this.maxKeys) {
      const recent = this.tick - (this.maxKeys >> 1);
      for (let h = this.#head; h !== null; h = this.#head) {
        if (h.gen <= recent || h.gen === 0) {
          this.remove(h);
          break;
        }
        h.gen = 0; // one second chance per pass, so the walk always ends
        this.#unlink(h);
        this.#link(h);
      }
    }
    s.gen = ++this.tick;
    this.#link(s);
    this.size++;
  }

  #unlink(s: Slot): void {
    const { prev, next } = s;
    if (prev !== null) prev.next = next;
    else this.#head = next;
    if (next !== null) next.prev = prev;
    else this.#tail = prev;
    s.prev = s.next = null;
  }

  #link(s: Slot): void {
    s.prev = this.#tail;
    if (this.#tail !== null) this.#tail.next = s;
    else this.#head = s;
    this.#tail = s;
  }

  remove(s: Slot): void {
    this.#unlink(s);
    s.owner!.delete(s.key);
    this.size--;
  }

  /**
   * Every memory store of the process: the check and the charge run in one synchronous step, so nothing can
   * come between them whichever stores the scopes live on (each `rateLimiter()` without a store has its own).
   */
  atomicWith(other: StoreImpl): boolean {
    return other.sync;
  }

  applyAll(scopes: readonly StoreScope[], cost: number, now: number, outs: Out[]): number {
    let denied = -1;
    for (let i = 0; i < scopes.length; i++) {
      const sc = scopes[i]!;
      (sc.store as MemoryStoreImpl).bind(sc.name).apply(sc.key, sc.alg, sc.p, cost, Mode.peek, now, outs[i]!);
      if (!outs[i]!.allowed && denied < 0) denied = i;
    }
    if (denied >= 0) return denied;
    // everything is synchronous, so nothing can change between the check and the charge
    for (let i = 0; i < scopes.length; i++) {
      const sc = scopes[i]!;
      (sc.store as MemoryStoreImpl)
        .bind(sc.name)
        .apply(sc.key, sc.alg, sc.p, cost, Mode.commit, now, outs[i]!);
    }
    return -1;
  }
}

/**
 * The default store: per-process, bounded to `maxKeys` keys with LRU eviction (approximated: a key used
 * within the last maxKeys / 2 calls is never evicted; O(1) amortised) and lazy expiry, so it needs no timer per
 * key and never grows past the bound. Limiters of the same name on one store share state.
 *
 * @example
 * const store = memoryStore({ maxKeys: 50_000 });
 * const perUser = rateLimiter({ name: 'user', algorithm: gcra({ limit: 100, periodMs: 60_000 }), store });
 */
export function memoryStore(o: MemoryStoreOptions = {}): RateLimitStore {
  if (o === null || typeof o !== 'object') throw invalidOption('memoryStore() takes { maxKeys? }');
  const maxKeys = o.maxKeys ?? 100_000;
  v.integer('maxKeys', maxKeys, { min: 1 });
  return new MemoryStoreImpl(maxKeys);
}

/** Keys currently held, for tests and metrics. */
export const memoryStoreSize = (s: RateLimitStore): number => (s as MemoryStoreImpl).size;
