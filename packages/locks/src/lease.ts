import type { HeldLock } from './backend.js';
import { OmsLocksError } from './errors.js';
import { backgroundTimeout, type Clock } from './internal/clock.js';
import type { Emitter } from './internal/emitter.js';
import type { Lease, LockMode, LocksEvents, LossReason } from './types.js';
import { checkTtl } from './validate.js';

/** What a lease needs of the store that granted it; the store keeps everything else to itself. */
export interface LeaseHost {
  readonly backend: string;
  readonly clock: Clock;
  readonly events: Emitter<LocksEvents>;
  marginFor(ttlMs: number): number;
  forget(lease: LeaseImpl): void;
}

/** A backend call that failed: retryable, with the backend's error as the cause. */
export const backendError = (what: string, cause: unknown) =>
  new OmsLocksError('ERR_OMS_LOCKS_BACKEND', `${what} failed: ${(cause as Error)?.message ?? cause}`, true, {
    cause,
  });

/** @internal */
export class LeaseImpl implements Lease {
  readonly #store: LeaseHost;
  readonly #held: HeldLock;
  // created when someone reads `signal`: most leases are released without anybody asking
  #ac: AbortController | undefined;
  #lostError: OmsLocksError | undefined;
  readonly #autoExtend: boolean;
  readonly #acquiredAt: number;
  #ttl: number;
  #confirmedAt: number;
  // One timer per lease, set for its next deadline: the next heartbeat (while auto-extending) or else the
  // local expiry. A heartbeat that fires re-arms it for the expiry while its extend is in flight, so a lease
  // released before ttl/3 never had more than this one timer.
  #timer: unknown;
  /** When the next heartbeat is due; undefined while one is in flight, after release, or without auto-extend. */
  #extendAt: number | undefined;
  #released: Promise<void> | undefined;
  #onLost: (() => void) | undefined;
  #lossWatcher: ((e: OmsLocksError) => void) | undefined;

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
    if (!this.#ac) {
      this.#ac = new AbortController();
      if (this.#lostError) this.#ac.abort(this.#lostError);
    }
    return this.#ac.signal;
  }

  get lost(): boolean {
    return this.#lostError !== undefined;
  }

  get validUntil(): number {
    // the server started the ttl no earlier than we sent the request, so this never overshoots its expiry
    return this.#confirmedAt + this.#ttl - this.#store.marginFor(this.#ttl);
  }

  /**
   * Calls `fn` when the lease is lost (at once if it is); withLock's race, without an AbortController or a
   * listener. Returns the function that stops watching.
   */
  watchLoss(fn: (e: OmsLocksError) => void): () => void {
    if (this.#lostError) {
      fn(this.#lostError);
      return () => {};
    }
    this.#lossWatcher = fn;
    return () => {
      if (this.#lossWatcher === fn) this.#lossWatcher = undefined;
    };
  }

  #clearTimer(): void {
    if (this.#timer !== undefined) this.#store.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** Starts a new ttl period: the next heartbeat at a third of it, the expiry at `validUntil`. */
  #arm(): void {
    this.#extendAt = this.#autoExtend ? this.#store.clock.now() + this.#ttl / 3 : undefined;
    this.#schedule();
  }

  /** (Re)sets the one timer for the earlier of the next heartbeat and the expiry. */
  #schedule(): void {
    const c = this.#store.clock;
    this.#clearTimer();
    const at = this.#extendAt === undefined ? this.validUntil : Math.min(this.#extendAt, this.validUntil);
    // background: nobody awaits the expiry, and a held lease must not keep a finished script alive
    this.#timer = backgroundTimeout(c, () => this.#due(), Math.max(0, at - c.now()));
  }

  #due(): void {
    this.#timer = undefined;
    if (this.#lostError) return;
    const now = this.#store.clock.now();
    if (now >= this.validUntil) {
      this.#lose('expired');
      return;
    }
    if (this.#extendAt !== undefined && now >= this.#extendAt && !this.#released) {
      this.#extendAt = undefined;
      this.extend().catch(() => {
        // a transient failure: try again soon; the expiry decides when it is too late
        if (this.#lostError || this.#released) return;
        this.#extendAt = this.#store.clock.now() + Math.max(this.#ttl / 10, 20);
        this.#schedule();
      });
    } else if (this.#released) {
      this.#extendAt = undefined;
    }
    // until the extend confirms (which re-arms), or after a release that is still in flight: the expiry
    this.#schedule();
  }

  async extend(ttlMs: number = this.#ttl): Promise<void> {
    checkTtl('ttlMs', ttlMs);
    if (this.#lostError) throw this.#lostError;
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
    if (this.#lostError) throw this.#lostError;
    if (this.#released)
      throw new OmsLocksError('ERR_OMS_LOCKS_RELEASED', 'the lease was released; acquire again');
    if (!ok) {
      this.#lose('stolen');
      throw this.#lostError;
    }
    // a confirmation that arrives after the local deadline cannot un-lose the lease (checked above)
    this.#confirmedAt = Math.max(this.#confirmedAt, sentAt);
    this.#ttl = ttlMs;
    this.#arm();
    const events = this.#store.events;
    if (events.has('extended'))
      events.emit('extended', { backend: this.#store.backend, mode: this.mode, at: sentAt });
  }

  #lose(reason: LossReason): void {
    if (this.#lostError) return;
    const e = new OmsLocksError('ERR_OMS_LOCKS_LOST', `lease lost (${reason}); stop writing under it`, false);
    this.#lostError = e;
    this.#extendAt = undefined;
    this.#clearTimer();
    this.#store.forget(this);
    this.#ac?.abort(e);
    this.#lossWatcher?.(e);
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
    this.#released ??= this.#release();
    return this.#released;
  }

  #release(): Promise<void> {
    // no more heartbeats; the timer stays: a release stuck on a hung server still ends in a loss, on time
    this.#extendAt = undefined;
    return new Promise<void>((resolve) => {
      this.#onLost = resolve;
      const settle = (ok: boolean) => {
        this.#onLost = undefined;
        if (!this.#lostError) this.#settleRelease(ok);
        resolve();
      };
      // unreachable backend: the lock expires with its ttl (or with its connection)
      this.#held.release().then(settle, () => settle(true));
    });
  }

  /** The backend answered the release: `ok` false means the lock had been lost meanwhile. */
  #settleRelease(ok: boolean): void {
    this.#clearTimer();
    this.#store.forget(this);
    if (!ok) {
      // the lock had expired or changed hands while we thought we held it: that is a loss
      this.#lose('stolen');
      return;
    }
    const events = this.#store.events;
    if (events.has('released')) {
      events.emit('released', {
        backend: this.#store.backend,
        mode: this.mode,
        heldMs: this.#store.clock.now() - this.#acquiredAt,
      });
    }
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.release();
  }
}
