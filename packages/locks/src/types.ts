/**
 * How a lease shares its key: one `exclusive` holder, or any number of `shared` holders (readers).
 *
 * @example
 * import type { LockMode } from '@oms/locks';
 * const mode: LockMode = 'shared';
 */
export type LockMode = 'exclusive' | 'shared';

/**
 * Why a lease was lost; the `oms.locks.lost` counter uses it as its `oms.locks.reason` attribute.
 *
 * @example
 * import { type LossReason, memoryLocks } from '@oms/locks';
 * const reasons: LossReason[] = [];
 * memoryLocks().on('lost', (e) => reasons.push(e.reason));
 */
export type LossReason =
  /** The lease was not extended in time (a slow or failed heartbeat, a paused server or process). */
  | 'expired'
  /** The backend said the lease was no longer ours (extend or release found another owner or none). */
  | 'stolen'
  /** The connection that held the lock died (PostgreSQL advisory locks). */
  | 'connection';

import type { Clock } from './internal/clock.js';

/**
 * Where time comes from: `now()` in ms, `setTimeout` and `clearTimeout`. Inject a fake one in tests.
 *
 * @example
 * import { type Clock, memoryLocks, systemClock } from '@oms/locks';
 * const clock: Clock = systemClock;
 * const locks = memoryLocks({ clock });
 */
export type { Clock };

/**
 * Per-call options of `acquire`, `tryAcquire`, `withLock` and `acquireAll`.
 *
 * @example
 * import type { AcquireOptions } from '@oms/locks';
 * const opts: AcquireOptions = { ttlMs: 15_000, waitMs: 2_000, mode: 'exclusive', signal: AbortSignal.timeout(5_000) };
 */
export interface AcquireOptions {
  /** Lease time to live in ms; the lease is auto-extended at about ttl/3 while held. Default: the store's. */
  ttlMs?: number;
  /** How long `acquire` waits for the lock before `ERR_OMS_LOCKS_TIMEOUT`. `0` tries once. Default: the store's. */
  waitMs?: number;
  /** Default `'exclusive'`. */
  mode?: LockMode;
  /** Aborts the wait (`ERR_OMS_LOCKS_ABORTED`). Once the lease is granted, this signal no longer matters. */
  signal?: AbortSignal;
  /** Extend the lease automatically at about ttl/3 until released. Default `true`. */
  autoExtend?: boolean;
}

/**
 * A held lock. Release it (or `await using` it) when done.
 *
 * @example
 * import { type Lease, memoryLocks } from '@oms/locks';
 * const locks = memoryLocks();
 * const lease: Lease = await locks.acquire('orders:export');
 * try {
 *   lease.signal.throwIfAborted(); // before each guarded write
 * } finally {
 *   await lease.release();
 * }
 */
export interface Lease {
  readonly key: string;
  readonly mode: LockMode;
  /**
   * Strictly increasing per key for the lifetime of the store: pass it to every write the lock guards, and
   * have the resource reject writes carrying a smaller token than one it has seen (see the README).
   */
  readonly fencingToken: bigint;
  /** Aborts (with an `ERR_OMS_LOCKS_LOST` reason) as soon as the lease may no longer be held. */
  readonly signal: AbortSignal;
  /** `true` once the lease is lost. */
  readonly lost: boolean;
  /** Local deadline (clock ms) after which the lease counts as lost unless extended. */
  readonly validUntil: number;
  /** Extends the lease by `ttlMs` (default: its ttl) from now. Rejects with `ERR_OMS_LOCKS_LOST` when lost. */
  extend(ttlMs?: number): Promise<void>;
  /** Releases the lease and wakes waiters. Idempotent: later calls resolve to the first call's result. */
  release(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * Events of a `Locks` store: the seam telemetry (`instrument`) listens to. Keys never appear here.
 *
 * @example
 * import { type LocksEvents, memoryLocks } from '@oms/locks';
 * const waits: LocksEvents['acquired'][] = [];
 * const off = memoryLocks().on('acquired', (e) => waits.push(e));
 * off();
 */
export interface LocksEvents {
  acquired: { backend: string; mode: LockMode; waitMs: number };
  /** An `acquire` found the key taken and now waits for it (once per call, after its first try). */
  waiting: { backend: string; mode: LockMode };
  /** An `acquire` that gave up (timeout or abort). */
  waitFailed: { backend: string; mode: LockMode; waitMs: number; outcome: 'timeout' | 'aborted' };
  extended: { backend: string; mode: LockMode; at: number };
  released: { backend: string; mode: LockMode; heldMs: number };
  lost: { backend: string; mode: LockMode; reason: LossReason; heldMs: number };
}

/**
 * The one lock interface of every backend.
 *
 * @example
 * import { type Locks, memoryLocks } from '@oms/locks';
 * const locks: Locks = memoryLocks();
 * const total = await locks.withLock('invoice:42', async (lease) => Number(lease.fencingToken));
 */
export interface Locks {
  /** Backend name: `memory`, `redis`, `postgres-advisory` or `postgres-lease`. */
  readonly backend: string;
  /** Waits up to `waitMs` for the lock; rejects with `ERR_OMS_LOCKS_TIMEOUT` or `ERR_OMS_LOCKS_ABORTED`. */
  acquire(key: string, opts?: AcquireOptions): Promise<Lease>;
  /** One attempt: the lease, or `null` when the lock is taken. */
  tryAcquire(key: string, opts?: Omit<AcquireOptions, 'waitMs'>): Promise<Lease | null>;
  /**
   * Runs `fn` under the lock and releases it afterwards. If the lease is lost, rejects with
   * `ERR_OMS_LOCKS_LOST` (and aborts `lease.signal`), even if `fn` resolves later.
   */
  withLock<T>(key: string, fn: (lease: Lease) => Promise<T>, opts?: AcquireOptions): Promise<T>;
  /**
   * Acquires every key in a canonical (sorted, de-duplicated) order so two callers can never deadlock; on
   * failure releases what it took. `waitMs` is the budget for all of them together.
   */
  acquireAll(keys: readonly string[], opts?: AcquireOptions): Promise<Lease[]>;
  /** Subscribes to an event; returns the unsubscribe function. */
  on<E extends keyof LocksEvents>(event: E, fn: (e: LocksEvents[E]) => void): () => void;
  /** Releases every lease this store still holds, stops waits and timers. Idempotent. */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * Options every backend shares.
 *
 * @example
 * import { type LocksOptions, memoryLocks } from '@oms/locks';
 * const opts: LocksOptions = { ttlMs: 10_000, waitMs: 5_000, pollMs: 500, fair: true };
 * const locks = memoryLocks(opts);
 */
export interface LocksOptions {
  /** Default lease ttl in ms. Default 30 000; at least 200 (the heartbeat floor). */
  ttlMs?: number;
  /** Default wait of `acquire` in ms. Default 10 000. */
  waitMs?: number;
  /**
   * The lease counts as lost at `lastConfirmedExtension + ttl - safetyMarginMs`, ahead of the server's
   * expiry, to absorb clock-rate drift and the time a "lost" signal takes to reach your code. Default
   * `min(ttl / 10, 1000)`.
   */
  safetyMarginMs?: number;
  /** Fallback poll while waiting, in case a wake-up notification is lost. Jittered ±50 %. Default 1 000. */
  pollMs?: number;
  /**
   * `true` grants waiters of a key in arrival order, across modes: a waiting reader goes before a writer
   * that came after it, and consecutive readers go together. Default `false`: writer-preferring, where a
   * waiting writer holds new readers back and a stream of writers can starve readers. Every store that
   * shares a key must use the same setting.
   */
  fair?: boolean;
  /** Where time comes from; timers that bound an awaited wait are ref'd, heartbeats are not. */
  clock?: Clock;
}
