import { OmsRatelimitError } from './errors.js';
import type { Clock } from './types.js';

export interface Pending {
  at: number;
  done: boolean;
  reject: (e: unknown) => void;
}

export const abortedError = (signal: AbortSignal): OmsRatelimitError =>
  new OmsRatelimitError('ERR_OMS_RATELIMIT_ABORTED', 'the call was aborted', false, { cause: signal.reason });

/**
 * Holds the process open (ref) or lets it exit (unref) through a clock's timer handle, when it has them
 * (Node's do; a fake clock's need not).
 */
function hold(handle: unknown, on: boolean): void {
  const h = handle as { ref?: () => unknown; unref?: () => unknown } | null | undefined;
  if (on) h?.ref?.();
  else h?.unref?.();
}

/**
 * Bounds store calls in time with ONE timer per limiter instead of one per call: every call of a limiter has
 * the same bound, so deadlines arrive in issue order and a FIFO queue is enough.
 *
 * The caller awaits each bounded call, so the timer is ref'd while any call is pending: a script whose only
 * work is a call to a frozen store still gets its answer from the policy instead of exiting mid-await. Once
 * the queue is empty the timer (left to fire harmlessly) is unref'd, so it never keeps an idle process alive.
 */
export class Deadlines {
  readonly #q: Pending[] = [];
  #head = 0;
  #timer: unknown;
  constructor(
    readonly clock: Clock,
    readonly ms: number,
  ) {}

  /** Registers a call; `onTimeout` runs (once) if `settle` has not been called by the deadline. */
  track(onTimeout: (e: unknown) => void): Pending {
    const e: Pending = { at: this.clock.now() + this.ms, done: false, reject: onTimeout };
    this.#push(e);
    return e;
  }

  /** Registers a call object of its own: its `reject` runs (once) if `settle` has not been called by the deadline. */
  add(e: Pending): void {
    e.at = this.clock.now() + this.ms;
    this.#push(e);
  }

  /** Marks a call finished; false when it already timed out (or was aborted), so the caller drops the result. */
  settle(e: Pending): boolean {
    if (e.done) return false;
    e.done = true;
    this.#advance();
    return true;
  }

  run<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const e: Pending = { at: this.clock.now() + this.ms, done: false, reject };
      this.#push(e);
      let onAbort: (() => void) | undefined;
      if (signal) {
        onAbort = () => {
          if (e.done) return;
          e.done = true;
          this.#advance();
          reject(abortedError(signal));
        };
        signal.addEventListener('abort', onAbort, { once: true });
      }
      p.then(
        (v) => {
          if (onAbort) signal!.removeEventListener('abort', onAbort);
          if (e.done) return;
          e.done = true;
          this.#advance();
          resolve(v);
        },
        (err) => {
          if (onAbort) signal!.removeEventListener('abort', onAbort);
          if (e.done) return;
          e.done = true;
          this.#advance();
          reject(err);
        },
      );
    });
  }

  #push(e: Pending): void {
    const idle = this.#head === this.#q.length;
    this.#q.push(e);
    if (this.#timer === undefined) this.#arm(e.at);
    else if (idle) hold(this.#timer, true);
  }

  #advance(): void {
    const q = this.#q;
    while (this.#head < q.length && q[this.#head]!.done) this.#head++;
    if (this.#head === q.length) {
      if (q.length > 0 && this.#timer !== undefined) hold(this.#timer, false);
      q.length = 0;
      this.#head = 0;
    } else if (this.#head > 1024 && this.#head * 2 > q.length) {
      q.splice(0, this.#head);
      this.#head = 0;
    }
  }

  #arm(at: number): void {
    this.#timer = this.clock.setTimeout(() => this.#fire(), Math.max(0, at - this.clock.now()));
  }

  #fire(): void {
    this.#timer = undefined;
    const now = this.clock.now();
    const q = this.#q;
    while (this.#head < q.length) {
      const e = q[this.#head]!;
      if (!e.done) {
        if (e.at > now) break;
        e.done = true;
        e.reject(
          new OmsRatelimitError(
            'ERR_OMS_RATELIMIT_STORE_TIMEOUT',
            `the store did not answer within ${this.ms} ms`,
            true,
          ),
        );
      }
      this.#head++;
    }
    this.#advance();
    if (this.#head < q.length) this.#arm(q[this.#head]!.at);
  }

  close(): void {
    if (this.#timer !== undefined) this.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    const q = this.#q;
    for (let i = this.#head; i < q.length; i++) {
      const e = q[i]!;
      if (e.done) continue;
      e.done = true;
      e.reject(
        new OmsRatelimitError(
          'ERR_OMS_RATELIMIT_CLOSED',
          'the limiter was closed while the call was pending',
        ),
      );
    }
    q.length = 0;
    this.#head = 0;
  }
}

/** Abortable sleeps on an injected clock. */
export const Abort = {
  sleep(clock: Clock, ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (signal?.aborted) return reject(abortedError(signal));
      const onAbort = () => {
        clock.clearTimeout(h);
        reject(abortedError(signal!));
      };
      const h = clock.setTimeout(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      }, ms);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  },
};

/** A bounded call that an AbortSignal can also end: what a remote consume and a remote limitAll share. */
export interface AbortablePending extends Pending {
  readonly deadlines: Deadlines;
  readonly signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
  fail: (e: unknown) => void;
}

/** Starts `call`'s deadline and, with a signal, the abort that settles it first (the one closure, only then). */
export function startAbortable(call: AbortablePending): void {
  call.deadlines.add(call);
  const signal = call.signal;
  if (signal) {
    call.onAbort = () => {
      if (call.deadlines.settle(call)) call.fail(abortedError(signal));
    };
    signal.addEventListener('abort', call.onAbort, { once: true });
  }
}
