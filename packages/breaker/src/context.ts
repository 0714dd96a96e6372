import { OmsBreakerError } from './errors.js';
import type { ExecuteContext, Operation, Policy } from './types.js';

/** A signal that never aborts, handed out when the caller gave none (one shared instance, no allocation). */
export const NEVER: AbortSignal = new AbortController().signal;

const ROOT = 0;
const DERIVED = 1;
const SCOPED = 2;

/**
 * The context that travels inward through a pipeline. Its `signal` is built lazily: most functions never
 * read it, and an AbortController plus a parent listener per call is the main cost the timeout of other
 * libraries pays. A scoped context (one per timeout) only materialises a controller when somebody asks.
 */
export class CallContext implements ExecuteContext {
  // Fields the timeout's deadline list uses; kept on the context so a timed call allocates one object.
  deadline = 0;
  prev: CallContext | null = null;
  next: CallContext | null = null;
  queued = false;
  onExpire: ((reason: unknown) => void) | null = null;
  /** Set once a scoped context is aborted (timeout or close), before or after its signal exists. */
  reason: unknown = undefined;
  #signal: AbortSignal | undefined;
  #controller: AbortController | undefined = undefined;
  #unlink: (() => void) | undefined = undefined;

  constructor(
    readonly kind: number,
    readonly fn: Operation<unknown>,
    readonly parent: CallContext | null,
    readonly attempt: number,
    given: AbortSignal | undefined,
  ) {
    this.#signal = given;
  }

  static root(fn: Operation<unknown>, signal: AbortSignal | undefined): CallContext {
    return new CallContext(ROOT, fn, null, 1, signal);
  }

  /** Same signal as `this`, another attempt number. */
  withAttempt(attempt: number): CallContext {
    return new CallContext(DERIVED, this.fn, this, attempt, undefined);
  }

  /** A child with its own abort scope (a timeout). */
  scoped(): CallContext {
    return new CallContext(SCOPED, this.fn, this, this.attempt, undefined);
  }

  /** A root for a foreign policy's context: its signal replaces ours. */
  adopt(ctx: ExecuteContext): CallContext {
    return new CallContext(ROOT, this.fn, null, ctx.attempt, ctx.signal);
  }

  get signal(): AbortSignal {
    const s = this.#signal;
    if (s !== undefined) return s;
    if (this.kind === ROOT) {
      this.#signal = NEVER;
      return NEVER;
    }
    const parent = this.parent!;
    if (this.kind === DERIVED) {
      this.#signal = parent.signal;
      return this.#signal;
    }
    const c = new AbortController();
    this.#controller = c;
    this.#signal = c.signal;
    if (this.reason !== undefined) {
      c.abort(this.reason);
    } else {
      const ps = parent.signal;
      if (ps.aborted) {
        c.abort(ps.reason);
      } else if (ps !== NEVER) {
        const onAbort = () => this.abort(ps.reason);
        ps.addEventListener('abort', onAbort, { once: true });
        this.#unlink = () => ps.removeEventListener('abort', onAbort);
      }
    }
    return c.signal;
  }

  /** Checks without materialising any signal. */
  isAborted(): boolean {
    if (this.kind === SCOPED) return this.reason !== undefined || this.parent!.isAborted();
    if (this.kind === DERIVED) return this.parent!.isAborted();
    return this.#signal?.aborted === true;
  }

  /**
   * True when the signal the caller passed to `execute()` has aborted, as opposed to a timeout or a `close()`
   * inside the pipeline. The caller giving up says nothing about the dependency's health.
   */
  callerAborted(): boolean {
    let c: CallContext = this;
    while (c.parent !== null) c = c.parent;
    return c.#signal?.aborted === true;
  }

  abortReason(): unknown {
    if (this.kind === SCOPED && this.reason !== undefined) return this.reason;
    if (this.parent !== null) return this.parent.abortReason();
    return this.#signal?.reason;
  }

  abort(reason: unknown): void {
    if (this.reason !== undefined) return;
    this.reason = reason;
    this.#unlink?.();
    this.#unlink = undefined;
    this.#controller?.abort(reason);
  }

  /** Drops the listener on the parent signal; called when the scoped call settles. */
  dispose(): void {
    if (this.#unlink !== undefined) {
      this.#unlink();
      this.#unlink = undefined;
    }
  }
}

/** The rest of a pipeline, as seen by one policy. */
export interface Next {
  call(ctx: CallContext): unknown;
}

/** The end of every chain: run the user's function. */
export const TERMINAL: Next = { call: (ctx) => ctx.fn(ctx) };

export const kRun: unique symbol = Symbol('oms.breaker.run');

/** Our policies run through `[kRun]` so a pipeline composes them without a closure per layer per call. */
export abstract class PolicyBase implements Policy {
  abstract [kRun](ctx: CallContext, next: Next): Promise<unknown>;

  execute<T>(fn: Operation<T>, signal?: AbortSignal): Promise<T> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    return this[kRun](CallContext.root(fn, signal), TERMINAL) as Promise<T>;
  }

  async close(): Promise<void> {}

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

export function closedError(what: string): OmsBreakerError {
  return new OmsBreakerError(
    'ERR_OMS_BREAKER_CLOSED',
    `${what} was closed; create a new one to run more calls`,
  );
}

/** Waits `ms` on `clock`, rejecting early with the abort reason. Registers itself for `close()`. */
export function sleep(
  clock: { setTimeout(fn: () => void, ms: number): unknown; clearTimeout(h: unknown): void },
  ms: number,
  ctx: CallContext,
  sleepers: Set<(err: unknown) => void>,
): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const signal = ctx.signal;
    if (signal.aborted) return reject(signal.reason);
    const done = (err?: unknown) => {
      clock.clearTimeout(handle);
      signal.removeEventListener('abort', onAbort);
      sleepers.delete(cancel);
      if (err === undefined) resolve();
      else reject(err);
    };
    const onAbort = () => done(signal.reason);
    const cancel = (err: unknown) => done(err);
    const handle = clock.setTimeout(() => done(), ms);
    signal.addEventListener('abort', onAbort, { once: true });
    sleepers.add(cancel);
  });
}
