import { type AlgorithmImpl, COMMIT, newOut, type Out, PEEK, Slot } from './algorithm.js';
import type { StoreScope, SyncBinding, SyncStore } from './store.js';
import type { RateLimitStore } from './types.js';
import { positiveInt } from './validate.js';
import { invalidOption } from './errors.js';

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
      s.hot = true;
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
    this.store.admit(this, now);
    this.map.set(key, n);
    return n;
  }

  apply(key: string, alg: AlgorithmImpl, p: Float64Array, cost: number, mode: number, now: number, out: Out): void {
    alg.step(this.slot(key, now, mode !== PEEK), now, p, cost, mode, now, out);
  }

  reset(key: string): void {
    if (this.map.delete(key)) this.store.size--;
  }
}

class MemoryStoreImpl implements SyncStore {
  readonly kind = 'memory';
  readonly sync = true;
  size = 0;
  readonly #parts = new Map<string, Partition>();
  readonly #peekOuts: Out[] = [];
  constructor(readonly maxKeys: number) {}

  bind(name: string): Partition {
    let p = this.#parts.get(name);
    if (!p) {
      p = new Partition(this);
      this.#parts.set(name, p);
    }
    return p;
  }

  /** Makes room for one more key: CLOCK (second chance) over insertion order, expired slots first. */
  admit(part: Partition, now: number): void {
    if (this.size < this.maxKeys) {
      this.size++;
      return;
    }
    let victim = part.map.size > 0 ? part : undefined;
    if (!victim) for (const p of this.#parts.values()) if (p.map.size > 0) victim = p;
    if (!victim) {
      this.size++;
      return;
    }
    const map = victim.map;
    for (const [k, s] of map) {
      if (s.hot && now < s.exp) {
        // used since it was last passed over: move it to the back rather than evict it
        s.hot = false;
        map.delete(k);
        map.set(k, s);
        continue;
      }
      map.delete(k);
      return;
    }
  }

  applyAll(scopes: readonly StoreScope[], cost: number, now: number, outs: Out[]): number {
    const peek = this.#peekOuts;
    while (peek.length < scopes.length) peek.push(newOut());
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
 * The default store: per-process, bounded to `maxKeys` keys with LRU eviction (the CLOCK approximation:
 * a key used since the sweep last passed it gets a second chance) and lazy expiry, so it needs no timer per
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
