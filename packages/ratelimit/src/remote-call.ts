import type { Mode, Out } from './algorithm.js';
import { type Deadlines, type Pending, startAbortable } from './deadlines.js';
import { isOmsRatelimitError } from './errors.js';
import { internals as I, type Limiter } from './limiter.js';
import type { StoreSink } from './store.js';
import type { Decision } from './types.js';

/**
 * One `consume` or `peek` on a remote store: its deadline entry, the store's reply sink and its promise's
 * settlement in one object, so a call allocates no closures of its own.
 */
export class RemoteCall implements Pending, StoreSink {
  at = 0;
  done = false;
  resolve: (d: Decision) => void = noop;
  fail: (e: unknown) => void = noop;
  onAbort: (() => void) | undefined = undefined;

  constructor(
    readonly limiter: Limiter,
    readonly deadlines: Deadlines,
    readonly key: string,
    readonly cost: number,
    readonly mode: Mode,
    readonly limit: number,
    /** performance.now() at the call when 'storeCall' is listened to, else -1. */
    readonly t0: number,
    readonly signal: AbortSignal | undefined,
  ) {}

  /** Starts the call's clock and abort handling; the caller then hands it to the store. */
  start(): void {
    startAbortable(this);
  }

  #unlisten(): void {
    if (this.onAbort) this.signal!.removeEventListener('abort', this.onAbort);
  }

  /** The deadline passed (or the limiter closed): the store-error policy answers. */
  reject(err: unknown): void {
    this.#unlisten();
    if (isOmsRatelimitError(err) && err.code === 'ERR_OMS_RATELIMIT_CLOSED') {
      this.fail(err);
      return;
    }
    const l = this.limiter;
    if (this.t0 >= 0) I.storeCall(l, this.t0, false);
    const out: Out = { allowed: false, remaining: 0, resetMs: 0, retryAfterMs: 0 };
    const policy = I.degrade(l, err, this.key, this.cost, this.mode, out);
    this.resolve(I.decisionAs(l, out, this.limit, policy));
  }

  /** The store's answer. */
  reply(err: unknown, out: Out | undefined): void {
    // timed out or aborted: the policy (or the caller) already decided
    if (!this.deadlines.settle(this)) return;
    if (err !== null && err !== undefined) {
      this.reject(err);
      return;
    }
    this.#unlisten();
    if (this.t0 >= 0) I.storeCall(this.limiter, this.t0, true);
    this.resolve(I.decisionAs(this.limiter, out!, this.limit, undefined));
  }
}

const noop = (): void => undefined;
