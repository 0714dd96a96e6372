import { type CallContext, closedError, kRun, NEVER, type Next, PolicyBase } from './context.js';
import { invalid, OmsBreakerError } from './errors.js';
import { systemClock } from './internal/clock.js';
import { Emitter } from './internal/emitter.js';
import type { Clock, Timeout, TimeoutOptions, Unsubscribe } from './types.js';
import { policyName, requireObject, v } from './validate.js';

/**
 * Ref's or unref's a Node timer handle; a custom clock's handle without these methods is left alone.
 */
function hold(handle: unknown, on: boolean): void {
  const h = handle as { ref?: () => unknown; unref?: () => unknown } | null;
  if (on) h?.ref?.();
  else h?.unref?.();
}

/**
 * Calls under one timeout policy share a duration, so their deadlines arrive in the order they started: an
 * intrusive doubly linked list is already sorted. One clock timer watches the head; finishing a call unlinks
 * it in O(1) and never clears the timer (the timer re-arms itself for the new head when it fires).
 *
 * The timer bounds promises callers await, so it is ref'd while any call is in the list: a script whose only
 * work is a timed call must not exit mid-await. Once the list is empty, the timer left armed is unref'd, so a
 * finished call never holds the process open until its old deadline.
 */
class DeadlineList {
  head: CallContext | null = null;
  tail: CallContext | null = null;
  #timer: unknown = undefined;

  constructor(
    readonly clock: Clock,
    readonly expire: (c: CallContext) => void,
  ) {}

  push(c: CallContext): void {
    c.queued = true;
    c.prev = this.tail;
    const wasEmpty = this.tail === null;
    if (wasEmpty) this.head = c;
    else this.tail!.next = c;
    this.tail = c;
    if (this.#timer === undefined) this.#arm(c.deadline);
    else if (wasEmpty) hold(this.#timer, true);
  }

  remove(c: CallContext): void {
    if (!c.queued) return;
    c.queued = false;
    if (c.prev === null) this.head = c.next;
    else c.prev.next = c.next;
    if (c.next === null) this.tail = c.prev;
    else c.next.prev = c.prev;
    c.prev = null;
    c.next = null;
    if (this.head === null && this.#timer !== undefined) hold(this.#timer, false);
  }

  #arm(at: number): void {
    this.#timer = this.clock.setTimeout(this.#fire, Math.max(0, at - this.clock.now()));
  }

  readonly #fire = (): void => {
    this.#timer = undefined;
    const now = this.clock.now();
    for (let c = this.head; c !== null && c.deadline <= now; c = this.head) {
      this.remove(c);
      this.expire(c);
    }
    if (this.head !== null && this.#timer === undefined) this.#arm(this.head.deadline);
  };

  /** Empties the list, expiring every member with `f`, and stops the timer. */
  drain(f: (c: CallContext) => void): void {
    if (this.#timer !== undefined) this.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    for (let c = this.head; c !== null; c = this.head) {
      this.remove(c);
      f(c);
    }
  }
}

class TimeoutImpl extends PolicyBase implements Timeout {
  readonly kind = 'timeout' as const;
  readonly name: string;
  readonly ms: number;
  readonly #aggressive: boolean;
  readonly #clock: Clock;
  readonly #list: DeadlineList;
  readonly #ev = new Emitter<{ timeout: { name: string; ms: number } }>();
  #closed = false;

  constructor(ms: number, o: TimeoutOptions) {
    super();
    this.ms = v.positiveFinite('ms', ms);
    requireObject('timeout options', o);
    this.name = o.name === undefined ? 'timeout' : policyName('name', o.name);
    const strategy = o.strategy ?? 'aggressive';
    if (strategy !== 'cooperative' && strategy !== 'aggressive') {
      throw invalid(`strategy must be 'cooperative' or 'aggressive' (got ${String(strategy)})`);
    }
    this.#aggressive = strategy === 'aggressive';
    this.#clock = v.clock(o.clock, systemClock);
    this.#list = new DeadlineList(this.#clock, (c) => this.#expire(c));
  }

  on(event: 'timeout', fn: (e: { name: string; ms: number }) => void): Unsubscribe {
    return this.#ev.on(event, fn);
  }

  #error(cause?: unknown): OmsBreakerError {
    return new OmsBreakerError(
      'ERR_OMS_BREAKER_TIMEOUT',
      `'${this.name}' timed out after ${this.ms} ms`,
      true,
      {
        cause,
      },
    );
  }

  #expire(c: CallContext): void {
    if (this.#ev.has('timeout')) this.#ev.emit('timeout', { name: this.name, ms: this.ms });
    const err = this.#error();
    c.abort(err);
    c.onExpire?.(err);
  }

  [kRun](ctx: CallContext, next: Next): Promise<unknown> {
    if (this.#closed) return Promise.reject(closedError(`timeout '${this.name}'`));
    const c = ctx.scoped();
    c.deadline = this.#clock.now() + this.ms;
    this.#list.push(c);
    return this.#aggressive ? this.#race(c, next) : this.#cooperate(c, next);
  }

  async #cooperate(c: CallContext, next: Next): Promise<unknown> {
    try {
      return await next.call(c);
    } catch (e) {
      // The function gave up because we aborted it (or failed after the deadline): report the timeout.
      if (c.reason !== undefined && !c.parent!.isAborted()) throw e === c.reason ? e : this.#error(e);
      throw e;
    } finally {
      this.#list.remove(c);
      c.dispose();
    }
  }

  #race(c: CallContext, next: Next): Promise<unknown> {
    return new Promise((resolve, reject) => {
      // The caller giving up ends the wait too, as the deadline does, even if the function ignores its signal.
      const ps = c.parent!.signal;
      // Runs once: an abandoned function settling later must not unlink (or dispose) a second time.
      let finished = false;
      const done = () => {
        if (finished) return;
        finished = true;
        this.#list.remove(c);
        c.dispose();
        if (ps !== NEVER) ps.removeEventListener('abort', onCallerAbort);
      };
      const onCallerAbort = () => {
        done();
        c.abort(ps.reason);
        reject(ps.reason);
      };
      // At the deadline the function is abandoned: drop what ties it to the caller's signal now.
      c.onExpire = (err) => {
        done();
        reject(err);
      };
      if (ps.aborted) return onCallerAbort();
      if (ps !== NEVER) ps.addEventListener('abort', onCallerAbort, { once: true });
      let r: unknown;
      try {
        r = next.call(c);
      } catch (e) {
        done();
        return reject(e);
      }
      Promise.resolve(r).then(
        (v) => {
          done();
          resolve(v);
        },
        (e) => {
          done();
          reject(c.reason !== undefined && !c.parent!.isAborted() && e !== c.reason ? this.#error(e) : e);
        },
      );
    });
  }

  override async close(): Promise<void> {
    this.#closed = true;
    const err = closedError(`timeout '${this.name}'`);
    this.#list.drain((c) => {
      c.abort(err);
      c.onExpire?.(err);
      c.dispose();
    });
    this.#ev.clear();
  }
}

/**
 * Bounds a call to `ms`. All calls of one policy share a single timer and a linked list of deadlines, and a
 * call's AbortController is only created if the function reads `ctx.signal`, so a call that finishes in time
 * arms no timer of its own. At the deadline `ctx.signal` aborts and, by default (`aggressive`), the caller's
 * promise rejects with `ERR_OMS_BREAKER_TIMEOUT` right then, even if the function ignores its signal and never
 * settles; the function is left to finish in the background. Pass `{ strategy: 'cooperative' }` to wait
 * for the function to settle after the abort instead (for cleanup that must finish before the caller moves on).
 *
 * @example
 * const t = timeout(2_000);
 * const body = await t.execute(async ({ signal }) => (await fetch('http://search.internal/', { signal })).text());
 * // Opt-in: after the abort, wait for upload() to settle, so its cleanup finishes before the caller moves on.
 * declare function upload(o: { signal: AbortSignal }): Promise<void>;
 * await timeout(30_000, { strategy: 'cooperative' }).execute(({ signal }) => upload({ signal }));
 */
export function timeout(ms: number, opts: TimeoutOptions = {}): Timeout {
  return new TimeoutImpl(ms, opts);
}
