import { randomUUID } from 'node:crypto';
import type { Attempt, Backend, HeldLock } from './backend.js';
import { OmsLocksError } from './errors.js';
import { backgroundTimeout, type Clock, systemClock } from './internal/clock.js';
import { Emitter } from './internal/emitter.js';
import type {
  AcquireOptions,
  Lease,
  LockMode,
  Locks,
  LocksEvents,
  LocksOptions,
  LossReason,
} from './types.js';
import { checkBoolean, checkKey, checkMode, checkTtl, checkWait, v } from './validate.js';

interface Resolved {
  ttlMs: number;
  waitMs: number;
  mode: LockMode;
  autoExtend: boolean;
  signal: AbortSignal | undefined;
}

/** What a lease needs of the store that granted it; the store keeps everything else to itself. */
interface LeaseHost {
  readonly backend: string;
  readonly clock: Clock;
  readonly events: Emitter<LocksEvents>;
  marginFor(ttlMs: number): number;
  forget(lease: LeaseImpl): void;
}

const aborted = (reason: unknown) =>
  new OmsLocksError('ERR_OMS_LOCKS_ABORTED', 'acquire was aborted by its signal', false, { cause: reason });
const closedError = () => new OmsLocksError('ERR_OMS_LOCKS_CLOSED', 'the Locks store is closed');
const backendError = (what: string, cause: unknown) =>
  new OmsLocksError('ERR_OMS_LOCKS_BACKEND', `${what} failed: ${(cause as Error)?.message ?? cause}`, true, {
    cause,
  });

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
  readonly #fair: boolean;
  readonly #events = new Emitter<LocksEvents>();
  readonly #host: LeaseHost;
  readonly #waiters = new Map<string, Set<() => void>>();
  readonly #held = new Set<LeaseImpl>();
  readonly #stopWaits = new Set<(e: Error) => void>();
  readonly #wakeFn = (key: string) => this.#wake(key);
  #closed: Promise<void> | undefined;

  constructor(backend: Backend, opts: LocksOptions = {}) {
    const ttlMs = checkTtl('ttlMs', opts.ttlMs ?? 30_000);
    const waitMs = checkWait('waitMs', opts.waitMs ?? 10_000);
    const margin =
      opts.safetyMarginMs === undefined ? undefined : v.durationMs('safetyMarginMs', opts.safetyMarginMs);
    this.#pollMs = v.durationMs('pollMs', opts.pollMs ?? 1_000, { min: 10 });
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
    const lease = await this.acquire(key, opts);
    let onLost: (() => void) | undefined;
    try {
      const lost = new Promise<never>((_, reject) => {
        onLost = () => reject(lease.signal.reason);
        if (lease.signal.aborted) onLost();
        else lease.signal.addEventListener('abort', onLost, { once: true });
      });
      const result = await Promise.race([Promise.resolve().then(() => fn(lease)), lost]);
      // release reports a lease that had silently expired; the result is then not protected by the lock
      await lease.release();
      if (lease.lost) throw lease.signal.reason;
      return result;
    } finally {
      if (onLost) lease.signal.removeEventListener('abort', onLost);
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
    const clock = this.#clock;
    const started = clock.now();
    const deadline = started + waitMs;
    const waiting = waitMs > 0;
    let woken = false;
    let wakeNow: (() => void) | undefined;
    const onWake = () => {
      woken = true;
      wakeNow?.();
    };
    if (waiting) {
      let set = this.#waiters.get(key);
      if (!set) {
        set = new Set();
        this.#waiters.set(key, set);
      }
      set.add(onWake);
      // wake-ups must flow before the first try, or a release between try and subscribe is missed;
      // a failure leaves this wait to the poll and the next one retries
      if (!this.#b.listening) await this.#b.listen(this.#wakeFn).catch(() => {});
    }
    const owner = randomUUID();
    // waiters' marks (and writers' intents, and queue places) outlive the longest gap between two tries
    const markMs = waiting ? Math.ceil(this.#pollMs * 3 + 1_000) : 0;
    const fair = this.#fair;
    const attempt: Attempt = this.#b.attempt({
      key,
      mode: r.mode,
      ttlMs: r.ttlMs,
      owner,
      waitMarkMs: markMs,
      fair,
    });
    // a fair store orders waiters by their place in the queue, so writers need no intent to get their turn
    const intentMs = r.mode === 'exclusive' && !fair ? markMs : 0;
    let granted = false;
    let announced = false;
    try {
      for (;;) {
        woken = false;
        const sentAt = clock.now();
        let res: Awaited<ReturnType<Attempt['try']>>;
        try {
          res = await attempt.try(intentMs);
        } catch (e) {
          throw backendError('acquire', e);
        }
        if ('token' in res) {
          granted = true;
          const lease = new LeaseImpl(
            this.#host,
            key,
            r.mode,
            res.token,
            res.held,
            r.ttlMs,
            sentAt,
            r.autoExtend,
          );
          if (signal?.aborted || this.#closed) {
            await lease.release();
            throw this.#closed ? closedError() : aborted(signal?.reason);
          }
          this.#held.add(lease);
          this.#events.emit('acquired', {
            backend: this.backend,
            mode: r.mode,
            waitMs: clock.now() - started,
          });
          return lease;
        }
        const now = clock.now();
        if (now >= deadline || !waiting) {
          if (waiting)
            this.#events.emit('waitFailed', {
              backend: this.backend,
              mode: r.mode,
              waitMs: now - started,
              outcome: 'timeout',
            });
          return null;
        }
        if (signal?.aborted) {
          this.#events.emit('waitFailed', {
            backend: this.backend,
            mode: r.mode,
            waitMs: now - started,
            outcome: 'aborted',
          });
          throw aborted(signal.reason);
        }
        if (this.#closed) throw closedError();
        if (!announced) {
          announced = true;
          this.#events.emit('waiting', { backend: this.backend, mode: r.mode });
        }
        try {
          if (attempt.markWaiting && (await attempt.markWaiting())) continue;
        } catch {
          // no mark: this wait falls back to the poll
        }
        if (woken) continue;
        const poll = this.#pollMs * (0.5 + Math.random());
        const hint =
          res.retryAfterMs !== undefined
            ? res.retryAfterMs + 1 + Math.random() * 5
            : Number.POSITIVE_INFINITY;
        const delay = Math.max(0, Math.min(poll, hint, deadline - now));
        await new Promise<void>((resolve, reject) => {
          const cleanup = () => {
            clock.clearTimeout(timer);
            signal?.removeEventListener('abort', onAbort);
            this.#stopWaits.delete(stop);
            wakeNow = undefined;
          };
          // ref'd on purpose (systemClock): the caller awaits this wait, so it must hold a bare script open
          const timer = clock.setTimeout(() => {
            cleanup();
            resolve();
          }, delay);
          const onAbort = () => {
            cleanup();
            this.#events.emit('waitFailed', {
              backend: this.backend,
              mode: r.mode,
              waitMs: clock.now() - started,
              outcome: 'aborted',
            });
            reject(aborted(signal?.reason));
          };
          const stop = (e: Error) => {
            cleanup();
            reject(e);
          };
          wakeNow = () => {
            cleanup();
            resolve();
          };
          signal?.addEventListener('abort', onAbort, { once: true });
          this.#stopWaits.add(stop);
        });
      }
    } finally {
      if (waiting) {
        const set = this.#waiters.get(key);
        set?.delete(onWake);
        if (set?.size === 0) this.#waiters.delete(key);
      }
      if (!granted) await attempt.cancel().catch(() => {});
    }
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

/** @internal */
export class LeaseImpl implements Lease {
  readonly #store: LeaseHost;
  readonly #held: HeldLock;
  readonly #ac = new AbortController();
  readonly #autoExtend: boolean;
  readonly #acquiredAt: number;
  #ttl: number;
  #confirmedAt: number;
  #extendTimer: unknown;
  #expiryTimer: unknown;
  #released: Promise<void> | undefined;
  #lost = false;
  #onLost: (() => void) | undefined;

  constructor(
    store: LeaseHost,
    readonly key: string,
    readonly mode: LockMode,
    readonly fencingToken: bigint,
    held: HeldLock,
    ttlMs: number,
    confirmedAt: number,
    autoExtend: boolean,
  ) {
    this.#store = store;
    this.#held = held;
    this.#ttl = ttlMs;
    this.#confirmedAt = confirmedAt;
    this.#autoExtend = autoExtend;
    this.#acquiredAt = store.clock.now();
    held.onLoss?.((reason) => this.#lose(reason));
    this.#arm();
  }

  get signal(): AbortSignal {
    return this.#ac.signal;
  }

  get lost(): boolean {
    return this.#lost;
  }

  get validUntil(): number {
    // the server started the ttl no earlier than we sent the request, so this never overshoots its expiry
    return this.#confirmedAt + this.#ttl - this.#store.marginFor(this.#ttl);
  }

  #clearTimers(): void {
    const c = this.#store.clock;
    if (this.#extendTimer !== undefined) c.clearTimeout(this.#extendTimer);
    if (this.#expiryTimer !== undefined) c.clearTimeout(this.#expiryTimer);
    this.#extendTimer = this.#expiryTimer = undefined;
  }

  #arm(): void {
    const c = this.#store.clock;
    this.#clearTimers();
    // background: nobody awaits the expiry, and a held lease must not keep a finished script alive
    this.#expiryTimer = backgroundTimeout(
      c,
      () => this.#lose('expired'),
      Math.max(0, this.validUntil - c.now()),
    );
    if (this.#autoExtend) this.#scheduleExtend(this.#ttl / 3);
  }

  #scheduleExtend(ms: number): void {
    const c = this.#store.clock;
    if (this.#extendTimer !== undefined) c.clearTimeout(this.#extendTimer);
    this.#extendTimer = backgroundTimeout(
      c,
      () => {
        this.#extendTimer = undefined;
        this.extend().catch(() => {
          // a transient failure: try again soon; the expiry timer decides when it is too late
          if (!this.#lost && !this.#released) this.#scheduleExtend(Math.max(this.#ttl / 10, 20));
        });
      },
      ms,
    );
  }

  async extend(ttlMs: number = this.#ttl): Promise<void> {
    checkTtl('ttlMs', ttlMs);
    if (this.#lost) throw this.signal.reason;
    if (this.#released)
      throw new OmsLocksError('ERR_OMS_LOCKS_RELEASED', 'the lease was released; acquire again');
    const c = this.#store.clock;
    const sentAt = c.now();
    let ok: boolean;
    try {
      ok = await this.#held.extend(ttlMs);
    } catch (e) {
      throw backendError('extend', e);
    }
    if (this.#lost) throw this.signal.reason;
    if (this.#released)
      throw new OmsLocksError('ERR_OMS_LOCKS_RELEASED', 'the lease was released; acquire again');
    if (!ok) {
      this.#lose('stolen');
      throw this.signal.reason;
    }
    // a confirmation that arrives after the local deadline cannot un-lose the lease (checked above)
    this.#confirmedAt = Math.max(this.#confirmedAt, sentAt);
    this.#ttl = ttlMs;
    this.#arm();
    this.#store.events.emit('extended', { backend: this.#store.backend, mode: this.mode, at: sentAt });
  }

  #lose(reason: LossReason): void {
    if (this.#lost) return;
    this.#lost = true;
    this.#clearTimers();
    this.#store.forget(this);
    const e = new OmsLocksError('ERR_OMS_LOCKS_LOST', `lease lost (${reason}); stop writing under it`, false);
    this.#ac.abort(e);
    this.#store.events.emit('lost', {
      backend: this.#store.backend,
      mode: this.mode,
      reason,
      heldMs: this.#store.clock.now() - this.#acquiredAt,
    });
    this.#onLost?.();
    if (this.#released) return; // a release is in flight already
    this.#released = Promise.resolve();
    // best effort, in the background: free the key if the server still has it (owner-checked, so never
    // someone else's); nobody waits for it, so a hung server cannot hang release() or withLock
    this.#held.release().catch(() => {});
  }

  release(): Promise<void> {
    this.#released ??= (async () => {
      if (this.#extendTimer !== undefined) this.#store.clock.clearTimeout(this.#extendTimer);
      this.#extendTimer = undefined;
      // the expiry timer keeps running: a release stuck on a hung server still ends in a loss, on time
      const lost = new Promise<'lost'>((resolve) => {
        this.#onLost = () => resolve('lost');
      });
      const ok = await Promise.race([
        // unreachable backend: the lock expires with its ttl (or with its connection)
        this.#held.release().catch(() => true),
        lost,
      ]);
      this.#onLost = undefined;
      if (ok === 'lost' || this.#lost) return;
      this.#clearTimers();
      this.#store.forget(this);
      if (!ok) {
        // the lock had expired or changed hands while we thought we held it: that is a loss
        this.#lose('stolen');
        return;
      }
      this.#store.events.emit('released', {
        backend: this.#store.backend,
        mode: this.mode,
        heldMs: this.#store.clock.now() - this.#acquiredAt,
      });
    })();
    return this.#released;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.release();
  }
}
