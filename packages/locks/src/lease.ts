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
