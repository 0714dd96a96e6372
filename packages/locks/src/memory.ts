import type { Attempt, AttemptRequest, Backend, HeldLock } from './backend.js';
import { LocksCore } from './core.js';
import { type Clock, systemClock } from './internal/clock.js';
import type { LockMode, Locks, LocksOptions } from './types.js';

interface Entry {
  writer?: { owner: string; expiresAt: number } | undefined;
  readers: Map<string, number>;
  intents: Map<string, number>;
  /** Waiters of a fair store in arrival order (a Map keeps insertion order; refreshing keeps the place). */
  queue: Map<string, { mode: LockMode; expiresAt: number }>;
}

/**
 * The lock state of `memoryLocks`. Stores created with the same table see each other's locks, as separate
 * processes do on a shared Redis; each store still has its own `close()`. Create one with `memoryLockTable()`.
 *
 * @example
 * import { type MemoryLockTable, memoryLocks, memoryLockTable } from '@oms/locks';
 * const table: MemoryLockTable = memoryLockTable();
 * const locks = memoryLocks({ table });
 */
export class MemoryLockTable {
  /** @internal */
  readonly entries = new Map<string, Entry>();
  /** @internal */
  readonly wakers = new Set<(key: string) => void>();
  // one counter for the whole table: strictly increasing globally is strictly increasing per key, and
  // entries of idle keys can be dropped without forgetting their last token
  /** @internal */
  fence = 0n;
  /** @internal */
  wake(key: string): void {
    for (const w of [...this.wakers]) w(key);
  }
}

/**
 * A lock table several `memoryLocks` stores can share.
 *
 * @example
 * const table = memoryLockTable();
 * const a = memoryLocks({ table });
 * const b = memoryLocks({ table }); // b.tryAcquire('k') is null while a holds 'k'
 */
export const memoryLockTable = (): MemoryLockTable => new MemoryLockTable();

class MemoryBackend implements Backend {
  readonly name = 'memory';
  readonly fair = true;
  readonly #t: MemoryLockTable;
  readonly #entries: Map<string, Entry>;
  readonly #clock: Clock;
  #waker: ((key: string) => void) | undefined;

  constructor(clock: Clock, table: MemoryLockTable) {
    this.#clock = clock;
    this.#t = table;
    this.#entries = table.entries;
  }

  #entry(key: string): Entry {
    let e = this.#entries.get(key);
    if (!e) {
      e = { readers: new Map(), intents: new Map(), queue: new Map() };
      this.#entries.set(key, e);
    }
    const now = this.#clock.now();
    if (e.writer && e.writer.expiresAt <= now) e.writer = undefined;
    for (const [o, at] of e.readers) if (at <= now) e.readers.delete(o);
    for (const [o, at] of e.intents) if (at <= now) e.intents.delete(o);
    for (const [o, q] of e.queue) if (q.expiresAt <= now) e.queue.delete(o);
    return e;
  }

  #gc(key: string, e: Entry): void {
    if (!e.writer && e.readers.size === 0 && e.intents.size === 0 && e.queue.size === 0) {
      this.#entries.delete(key);
    }
  }

  attempt(req: AttemptRequest): Attempt {
    return req.fair ? this.#fairAttempt(req) : this.#preferWriters(req);
  }

  #preferWriters({ key, mode, ttlMs, owner }: AttemptRequest): Attempt {
    return {
      try: async (intentMs) => {
        const e = this.#entry(key);
        const now = this.#clock.now();
        let blockedUntil: number | undefined;
        if (e.writer) blockedUntil = e.writer.expiresAt;
        if (mode === 'exclusive') {
          for (const at of e.readers.values()) blockedUntil = Math.max(blockedUntil ?? 0, at);
          if (blockedUntil !== undefined) {
            if (intentMs > 0) e.intents.set(owner, now + intentMs);
            return { retryAfterMs: blockedUntil - now };
          }
          e.intents.delete(owner);
          e.writer = { owner, expiresAt: now + ttlMs };
        } else {
          if (blockedUntil !== undefined || e.intents.size > 0) {
            this.#gc(key, e);
            return blockedUntil === undefined ? {} : { retryAfterMs: blockedUntil - now };
          }
          e.readers.set(owner, now + ttlMs);
        }
        return { token: ++this.#t.fence, held: this.#held(key, mode, owner) };
      },
      cancel: async () => {
        const e = this.#entries.get(key);
        if (e?.intents.delete(owner)) {
          this.#gc(key, e);
          // readers held back by this intent may go now
          this.#t.wake(key);
        }
      },
    };
  }

  #fairAttempt({ key, mode, ttlMs, owner, waitMarkMs }: AttemptRequest): Attempt {
    return {
      try: async () => {
        const e = this.#entry(key);
        const now = this.#clock.now();
        let blockedUntil: number | undefined = e.writer?.expiresAt;
        if (mode === 'exclusive')
          for (const at of e.readers.values()) blockedUntil = Math.max(blockedUntil ?? 0, at);
        // a reader may pass queued readers, never a queued writer; a writer passes nobody
        let queuedAhead = false;
        for (const [o, q] of e.queue) {
          if (o === owner) break;
          if (mode === 'exclusive' || q.mode === 'exclusive') {
            queuedAhead = true;
            break;
          }
        }
        if (blockedUntil !== undefined || queuedAhead) {
          if (waitMarkMs > 0) e.queue.set(owner, { mode, expiresAt: now + waitMarkMs });
          this.#gc(key, e);
          return blockedUntil === undefined ? {} : { retryAfterMs: blockedUntil - now };
        }
        e.queue.delete(owner);
        if (mode === 'exclusive') e.writer = { owner, expiresAt: now + ttlMs };
        else e.readers.set(owner, now + ttlMs);
        return { token: ++this.#t.fence, held: this.#held(key, mode, owner) };
      },
      cancel: async () => {
        const e = this.#entries.get(key);
        if (e?.queue.delete(owner)) {
          this.#gc(key, e);
          // the waiters queued behind this one may be next now
          this.#t.wake(key);
        }
      },
    };
  }

  #held(key: string, mode: LockMode, owner: string): HeldLock {
    const mine = (e: Entry) => (mode === 'exclusive' ? e.writer?.owner === owner : e.readers.has(owner));
    return {
      extend: async (ttlMs) => {
        const e = this.#entry(key);
        if (!mine(e)) return false;
        const at = this.#clock.now() + ttlMs;
        if (mode === 'exclusive') e.writer = { owner, expiresAt: at };
        else e.readers.set(owner, at);
        return true;
      },
      release: async () => {
        const e = this.#entry(key);
        const ok = mine(e);
        if (ok) {
          if (mode === 'exclusive') e.writer = undefined;
          else e.readers.delete(owner);
        }
        this.#gc(key, e);
        this.#t.wake(key);
        return ok;
      },
    };
  }

  get listening(): boolean {
    return this.#waker !== undefined;
  }

  async listen(wake: (key: string) => void): Promise<void> {
    if (this.#waker) return;
    this.#waker = wake;
    this.#t.wakers.add(wake);
  }

  async close(): Promise<void> {
    if (this.#waker) this.#t.wakers.delete(this.#waker);
    this.#waker = undefined;
  }
}

/**
 * Options of `memoryLocks`.
 *
 * @example
 * import { type MemoryLocksOptions, memoryLocks, memoryLockTable } from '@oms/locks';
 * const opts: MemoryLocksOptions = { table: memoryLockTable(), ttlMs: 5_000, fair: true };
 * const locks = memoryLocks(opts);
 */
export interface MemoryLocksOptions extends LocksOptions {
  /** Share locks with other stores of this process. Default: a table of this store's own. */
  table?: MemoryLockTable;
}

/**
 * Single-process locks with the same semantics as the Redis and PostgreSQL backends (ttl, auto-extension,
 * loss signal, fencing tokens, shared mode, writer preference), for tests and embedded use.
 *
 * @example
 * import { memoryLocks } from '@oms/locks';
 * declare function writeReport(o: { fence: bigint; signal: AbortSignal }): Promise<void>;
 * const locks = memoryLocks({ ttlMs: 10_000 });
 * await locks.withLock('report:daily', async (lease) => {
 *   await writeReport({ fence: lease.fencingToken, signal: lease.signal });
 * });
 */
export function memoryLocks(opts: MemoryLocksOptions = {}): Locks {
  return new LocksCore(
    new MemoryBackend(opts.clock ?? systemClock, opts.table ?? new MemoryLockTable()),
    opts,
  );
}
