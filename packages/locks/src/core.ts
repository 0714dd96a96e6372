import { randomUUID } from 'node:crypto';
import type { Attempt, AttemptResult, Backend } from './backend.js';
import { OmsLocksError } from './errors.js';
import { type Clock, systemClock } from './internal/clock.js';
import { Emitter } from './internal/emitter.js';
import { backendError, type LeaseHost, LeaseImpl } from './lease.js';
import type { AcquireOptions, Lease, LockMode, Locks, LocksEvents, LocksOptions } from './types.js';
import { checkBoolean, checkKey, checkMode, checkTtl, checkWait, v } from './validate.js';
import { type Random, WAIT_ABORTED, Wait, waitDelay } from './wait.js';

type Granted = Extract<AttemptResult, { token: bigint }>;

interface Resolved {
  ttlMs: number;
  waitMs: number;
  mode: LockMode;
  autoExtend: boolean;
  signal: AbortSignal | undefined;
}

const aborted = (reason: unknown) =>
  new OmsLocksError('ERR_OMS_LOCKS_ABORTED', 'acquire was aborted by its signal', false, { cause: reason });
const closedError = () => new OmsLocksError('ERR_OMS_LOCKS_CLOSED', 'the Locks store is closed');
/**
 * The backend-independent half of every `Locks`: option checks, waiting (woken by the backend's
 * notifications, a jittered poll as fallback), auto-extension, local loss detection, `withLock` and
 * `acquireAll`.
 */
export class LocksCore implements Locks {
  readonly backend: string;
  readonly #b: Backend;
  readonly #clock: Clock;
  readonly #defaults: { ttlMs: number; waitMs: number };
  readonly #pollMs: number;
  readonly #markMs: number;
  readonly #fair: boolean;
  readonly #events = new Emitter<LocksEvents>();
  readonly #host: LeaseHost;
  readonly #waiters = new Map<string, Set<() => void>>();
  readonly #held = new Set<LeaseImpl>();
  readonly #stopWaits = new Set<(e: Error) => void>();
  readonly #wakeFn = (key: string) => this.#wake(key);
  readonly #random: Random;
  #closed: Promise<void> | undefined;

  /** `random` jitters the poll between tries (injectable for tests). */
  constructor(backend: Backend, opts: LocksOptions = {}, random: Random = Math.random) {
    this.#random = random;
    const ttlMs = checkTtl('ttlMs', opts.ttlMs ?? 30_000);
    const waitMs = checkWait('waitMs', opts.waitMs ?? 10_000);
    const margin =
      opts.safetyMarginMs === undefined ? undefined : v.durationMs('safetyMarginMs', opts.safetyMarginMs);
    this.#pollMs = v.durationMs('pollMs', opts.pollMs ?? 1_000, { min: 10 });
    this.#markMs = Math.ceil(this.#pollMs * 3 + 1_000);
    this.#clock = v.clock(opts.clock, systemClock);
    this.#fair = checkBoolean('fair', opts.fair ?? false);
    if (this.#fair && !backend.fair) {
      throw new OmsLocksError(
        'ERR_OMS_LOCKS_INVALID_OPTION',
        `fair: true is not supported by the ${backend.name} backend`,
      );
    }
    this.backend = backend.name;
    this.#b = backend;
    this.#defaults = { ttlMs, waitMs };
    this.#host = {
      backend: backend.name,
      clock: this.#clock,
      events: this.#events,
      marginFor: (ttl) => Math.min(margin ?? Math.min(ttl / 10, 1_000), ttl / 3),
      forget: (lease) => void this.#held.delete(lease),
    };
  }

  on<E extends keyof LocksEvents>(event: E, fn: (e: LocksEvents[E]) => void): () => void {
    return this.#events.on(event, fn);
  }

  #resolve(key: unknown, opts: AcquireOptions | undefined): Resolved {
    checkKey(key);
    const o = opts ?? {};
    const ttlMs = o.ttlMs ?? this.#defaults.ttlMs;
    if (o.ttlMs !== undefined) checkTtl('ttlMs', ttlMs);
    const waitMs = o.waitMs ?? this.#defaults.waitMs;
    if (o.waitMs !== undefined) checkWait('waitMs', waitMs);
    const mode = o.mode ?? 'exclusive';
    checkMode(mode);
    return { ttlMs, waitMs, mode, autoExtend: o.autoExtend ?? true, signal: o.signal };
  }

  async acquire(key: string, opts?: AcquireOptions): Promise<Lease> {
    const r = this.#resolve(key, opts);
    const lease = await this.#acquire(key, r, r.waitMs);
    if (!lease) {
      throw new OmsLocksError(
        'ERR_OMS_LOCKS_TIMEOUT',
        `lock not acquired within waitMs (${r.waitMs} ms)`,
        true,
      );
    }
    return lease;
  }

  tryAcquire(key: string, opts?: Omit<AcquireOptions, 'waitMs'>): Promise<Lease | null> {
    try {
      return this.#acquire(key, this.#resolve(key, { ...opts, waitMs: 0 }), 0);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  async withLock<T>(key: string, fn: (lease: Lease) => Promise<T>, opts?: AcquireOptions): Promise<T> {
    if (typeof fn !== 'function') {
      throw new OmsLocksError('ERR_OMS_LOCKS_INVALID_OPTION', `withLock needs a function (got ${typeof fn})`);
    }
    const lease = (await this.acquire(key, opts)) as LeaseImpl;
    let unwatch: (() => void) | undefined;
    try {
      const result = await new Promise<T>((resolve, reject) => {
        unwatch = lease.watchLoss(reject);
        Promise.resolve()
          .then(() => fn(lease))
          .then(resolve, reject);
      });
      // release reports a lease that had silently expired; the result is then not protected by the lock
      await lease.release();
      if (lease.lost) throw lease.signal.reason;
      return result;
    } finally {
      unwatch?.();
      await lease.release();
    }
  }

  async acquireAll(keys: readonly string[], opts?: AcquireOptions): Promise<Lease[]> {
    if (!Array.isArray(keys) || keys.length === 0) {
      throw new OmsLocksError('ERR_OMS_LOCKS_INVALID_OPTION', 'acquireAll needs a non-empty array of keys');
    }
    for (const k of keys) checkKey(k);
    const r = this.#resolve(keys[0], opts);
    // one global order (UTF-16 code units, like Array#sort) is what rules out lock-order deadlocks
    const ordered = [...new Set(keys)].sort();
    const deadline = this.#clock.now() + r.waitMs;
    const leases: Lease[] = [];
    try {
      for (const key of ordered) {
        const waitMs = Math.max(0, deadline - this.#clock.now());
        leases.push(await this.acquire(key, { ...opts, waitMs }));
      }
      return leases;
    } catch (e) {
      await Promise.all(leases.map((l) => l.release()));
      throw e;
    }
  }

  async #acquire(key: string, r: Resolved, waitMs: number): Promise<Lease | null> {
    if (this.#closed) throw closedError();
    const { signal } = r;
    if (signal?.aborted) throw aborted(signal.reason);
    const started = this.#clock.now();
    const waiting = waitMs > 0;
    // waiters' marks (and writers' intents, and queue places) outlive the longest gap between two tries
    const markMs = waiting ? this.#markMs : 0;
    const attempt = this.#b.attempt({
      key,
      mode: r.mode,
      ttlMs: r.ttlMs,
      owner: randomUUID(),
      waitMarkMs: markMs,
      fair: this.#fair,
    });
    let granted = false;
    try {
      const got = await this.#tryUntil(
        attempt,
        key,
        r,
        started,
        waiting ? started + waitMs : undefined,
        markMs,
      );
      if (!got) return null;
      granted = true;
      return await this.#grant(key, r, got.res, got.sentAt, started);
    } catch (e) {
      if (e !== WAIT_ABORTED) throw e;
      this.#waitFailed(r.mode, this.#clock.now() - started, 'aborted');
      throw aborted(signal?.reason);
    } finally {
      if (!granted) await attempt.cancel().catch(() => {});
    }
  }

  /**
   * Tries until the backend grants the lock (its answer and when the try was sent), until `deadline`
   * (null; undefined for a single try), an abort (rejects with WAIT_ABORTED) or close(). Wake-ups for `key`
   * are subscribed to only once a try failed, and the next try follows at once: a release between the failed
   * try and the subscription woke nobody, so that try is what sees it.
   */
  async #tryUntil(
    attempt: Attempt,
    key: string,
    r: Resolved,
    started: number,
    deadline: number | undefined,
    markMs: number,
  ): Promise<{ res: Granted; sentAt: number } | null> {
    const clock = this.#clock;
    // a fair store orders waiters by their place in the queue, so writers need no intent to get their turn
    const intentMs = r.mode === 'exclusive' && !this.#fair ? markMs : 0;
    let wait: Wait | undefined;
    try {
      for (;;) {
        if (wait) wait.woken = false;
        const sentAt = clock.now();
        let res: AttemptResult;
        try {
          res = await attempt.try(intentMs);
        } catch (e) {
          throw backendError('acquire', e);
        }
        if ('token' in res) return { res, sentAt };
        const now = clock.now();
        if (deadline === undefined || now >= deadline) {
          if (deadline !== undefined) this.#waitFailed(r.mode, now - started, 'timeout');
          return null;
        }
        if (r.signal?.aborted) throw WAIT_ABORTED;
        if (this.#closed) throw closedError();
        let again = false;
        if (!wait) {
          this.#events.emit('waiting', { backend: this.backend, mode: r.mode });
          wait = new Wait();
          this.#subscribe(key, wait.wake);
          // a failure leaves this wait to the poll, and the next wait retries
          if (!this.#b.listening) await this.#b.listen(this.#wakeFn).catch(() => {});
          again = true;
        }
        try {
          if (attempt.markWaiting && (await attempt.markWaiting())) again = true;
        } catch {
          // no mark: this wait falls back to the poll
        }
        if (again || wait.woken) continue;
        const delay = waitDelay(this.#pollMs, res.retryAfterMs, deadline - now, this.#random);
        await wait.sleep(clock, delay, r.signal, this.#stopWaits);
      }
    } finally {
      if (wait) this.#unsubscribe(key, wait.wake);
    }
  }

  /** Turns a granted try into a lease, unless the caller gave up or the store closed meanwhile. */
  async #grant(key: string, r: Resolved, res: Granted, sentAt: number, started: number): Promise<Lease> {
    const lease = new LeaseImpl(this.#host, key, r.mode, res.token, res.held, r.ttlMs, sentAt, r.autoExtend);
    if (r.signal?.aborted || this.#closed) {
      await lease.release();
      throw this.#closed ? closedError() : aborted(r.signal?.reason);
    }
    this.#held.add(lease);
    if (this.#events.has('acquired')) {
      this.#events.emit('acquired', {
        backend: this.backend,
        mode: r.mode,
        waitMs: this.#clock.now() - started,
      });
    }
    return lease;
  }

  #waitFailed(mode: LockMode, waitMs: number, outcome: 'timeout' | 'aborted'): void {
    this.#events.emit('waitFailed', { backend: this.backend, mode, waitMs, outcome });
  }

  #subscribe(key: string, fn: () => void): void {
    let set = this.#waiters.get(key);
    if (!set) {
      set = new Set();
      this.#waiters.set(key, set);
    }
    set.add(fn);
  }

  #unsubscribe(key: string, fn: () => void): void {
    const set = this.#waiters.get(key);
    set?.delete(fn);
    if (set?.size === 0) this.#waiters.delete(key);
  }

  #wake(key: string): void {
    const set = this.#waiters.get(key);
    if (set) for (const fn of [...set]) fn();
  }

  close(): Promise<void> {
    this.#closed ??= (async () => {
      for (const stop of [...this.#stopWaits]) stop(closedError());
      await Promise.all([...this.#held].map((l) => l.release()));
      await this.#b.close();
    })();
    return this.#closed;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
